"""workers/: the Ray roles of a run and how they are placed.

- `deepspeed_role.DeepSpeedRole`: one DeepSpeed rank (engine, optimizer step, checkpoints, export), built
  from a keyword `RankSpec`; the policy `learner.Learner` (holds only the pure loss part of the algorithm),
  `critic.Critic`, `reward_model_learner`, `sft_learner` and `dpo_learner` each extend it with their own part;
- `reference.Reference`: frozen policy for reference log-probs;
- `rollout_worker.RolloutWorker`: owns one engine from `rltrain.engines`;
- `weight_sync`: learner -> engine buckets; `placement`: placement groups, slots, threads; `actor_set.ActorSet`:
  starts, replaces, restarts and stops the actors of a run;
- `group.RankGroup`: the one place that calls a method on every actor of a role and gathers.

May import: torch, ray, deepspeed, transformers, `algorithms`, `rltrain.config`, `rltrain.engines`.
Never `rltrain.driver` (the driver calls the workers, not the other way round).
"""
