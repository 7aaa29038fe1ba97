"""driver/: the process that runs the loop and owns all run state.

- `trainer.Trainer`: one step = schedule.next_batch -> log-prob passes -> algorithm driver part ->
  learners' update -> weight sync -> metrics/checkpoint (docs/architecture.md); `recovery`: lost
  actors, skipped steps; `preemption`: stop signals;
- `schedules` (sync, async, one_step_off, replay), `collector` (generation rounds, refills, the data
  policy), `replay` (the buffer), `partial` (partial rollouts), `multiturn` (environment episodes),
  `rollout` (prompts -> engines -> scored records -> the typed batch), `rewards` (the reward runner),
  `gt_probs` (IGPO's teacher-forced probabilities), `critic` (PPO's value model), `update` (mini- and
  micro-batches to the learners);
- `evaluation`, `checkpoint`, `tracking`, `progress`, `report`, `run_setup`, `sweep`.

May import everything in rltrain, `algorithms`, `rewards`, ray, torch, wandb.
"""
