"""driver/: the process that runs the loop and owns all run state.

- `trainer.Trainer`: one step = schedule.next_batch -> log-prob passes -> algorithm driver part ->
  learners' update -> weight sync -> metrics/checkpoint (docs/architecture.md);
- `schedules`: which batch the learner sees next (sync, one_step_off), prefetching, sampler rewind;
- `rollout`: prompts -> engines -> scored records -> the typed batch; `rewards`: reward runner;
- `evaluation`, `checkpoint`, `tracking`, `run_setup`.

May import everything in rltrain, `algorithms`, `rewards`, ray, torch, wandb.
"""
