"""driver/: the process that runs the loop and owns all run state, in three rooms under the loop.

The loop (this package's top level): `trainer.Trainer` (one step = schedule.next_batch -> log-prob
passes -> algorithm driver part -> learners' update -> weight sync -> metrics/checkpoint;
docs/architecture.md), `update` (mini- and micro-batches to the learners), `critic` (PPO's value model),
`run_setup` (run directory, model, data), `sweep` (trials of the loop under Ray Tune).

Rooms below it, none importing the loop or each other:
- `flow/`: schedules and the data flow (schedules, collector, rollout, multiturn, partial, replay,
  rewards, gt_probs, evaluation, chat_check);
- `recovery/`: checkpoint, restart (lost actors, skipped steps), preemption;
- `reporting/`: tracking, progress, report.

May import everything in rltrain, `algorithms`, `rewards`, ray, torch, wandb.
"""
