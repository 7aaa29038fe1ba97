"""Recovery from lost actors: starting every actor anew from a checkpoint, and counting skipped steps.

A dead rollout worker alone is replaced in place (`Trainer.replace_worker`, through the run's
`ActorSet`). A dead learner rank or reference takes the whole set with it (the learners share DeepSpeed
state and a process group), so `restart_actors` has the `ActorSet` stop and start every actor in the same
roles with the algorithm the run is using, forms the weight-sync groups anew, loads the last complete
checkpoint and syncs the engines. Steps after that checkpoint are run again (their lines appear twice in
the logs).
"""

from __future__ import annotations

from typing import Any

from rltrain.driver.recovery import checkpoint


def restart_actors(trainer: Any) -> None:
    """`trainer` is the run's `rltrain.driver.trainer.Trainer` (not imported here: it imports this)."""
    ckpt = checkpoint.latest(trainer.files.run_dir / "checkpoints")
    if ckpt is None:
        raise RuntimeError("a learner rank or the reference died before the first checkpoint: nothing to restart "
                           "from (set trainer.save_every to checkpoint during the run)")
    print(f"[rltrain] a learner rank or the reference died at step {trainer.step_idx}: restarting every actor "
          f"from {ckpt} (restart {trainer.actor_restarts} of {trainer.cfg.trainer.max_restarts})", flush=True)
    trainer.actors.restart()
    trainer.sync.connect(trainer.actors, trainer.cfg.sync.timeout_s)
    trainer.restore(ckpt)


def count_skipped(trainer: Any, skipped_share: float) -> None:
    """A step whose optimizer update was skipped (a non-finite gradient in the policy's or the critic's
    update; the ranks left weights and optimizer state alone): counted, and more than
    `trainer.max_skipped_steps` in a row stop the run."""
    if not skipped_share:
        trainer.skipped_in_a_row = 0
        return
    trainer.skipped_steps += 1
    trainer.skipped_in_a_row += 1
    print(f"[rltrain] step {trainer.step_idx}: non-finite gradient; the optimizer step was skipped "
          f"({trainer.skipped_in_a_row} in a row)", flush=True)
    limit = trainer.cfg.trainer.max_skipped_steps
    if trainer.skipped_in_a_row > limit:
        raise FloatingPointError(f"{trainer.skipped_in_a_row} steps in a row had non-finite gradients "
                                 f"(trainer.max_skipped_steps={limit}); stopping. The last complete checkpoint is "
                                 f"under {trainer.files.run_dir / 'checkpoints'}")
