"""Recovery from lost actors: which ones died, and starting every actor anew from a checkpoint.

A dead rollout worker alone is replaced in place (`Trainer.replace_worker`). A dead learner rank or
reference takes the whole set with it (the learners share DeepSpeed state and a process group), so
`restart_actors` kills what is left, starts every actor again in the same roles, loads the last
complete checkpoint and syncs the engines. The actor groups the rollouts and the collector hold are
kept: their members are swapped in place. Steps after that checkpoint are run again (their lines
appear twice in the logs).
"""

from __future__ import annotations

from typing import Any

import ray

from rltrain.driver import checkpoint
from rltrain.workers.group import RankGroup
from rltrain.workers.placement import Actors, start_actors, stop_actors


def _alive(actor, method: str) -> bool:
    try:
        RankGroup([actor]).call(method)
        return True
    except ray.exceptions.RayActorError:
        return False


def dead_rollout_workers(actors: Actors) -> list[int]:
    return [i for i, w in enumerate(actors.workers) if not _alive(w, "get_version")]


def core_actor_died(actors: Actors) -> bool:
    """Has a learner rank or the reference died?"""
    core = list(actors.learners) + (list(actors.reference) if actors.reference is not None else [])
    return not all(_alive(a, "ping") for a in core)


def restart_actors(trainer: Any) -> None:
    """`trainer` is the run's `rltrain.driver.trainer.Trainer` (not imported here: it imports this)."""
    ckpt = checkpoint.latest(trainer.files.run_dir / "checkpoints")
    if ckpt is None:
        raise RuntimeError("a learner rank or the reference died before the first checkpoint: nothing to restart "
                           "from (set trainer.save_every to checkpoint during the run)")
    print(f"[rltrain] a learner rank or the reference died at step {trainer.step_idx}: restarting every actor "
          f"from {ckpt} (restart {trainer.actor_restarts} of {trainer.cfg.trainer.max_restarts})", flush=True)
    stop_actors(trainer.actors)
    fresh = start_actors(*trainer.start_args)
    live = trainer.actors
    live.learners.actors[:] = fresh.learners.actors
    live.workers.actors[:] = fresh.workers.actors
    for role in ("reference", "critic"):
        if getattr(live, role) is not None and getattr(fresh, role) is not None:
            getattr(live, role).actors[:] = getattr(fresh, role).actors
    live.pg, live.spawn_worker, live.slots = fresh.pg, fresh.spawn_worker, fresh.slots
    trainer.sync.connect(live, trainer.cfg.sync.timeout_s)
    trainer.restore(ckpt)


def count_skipped(trainer: Any, skipped_share: float) -> None:
    """A step whose optimizer update was skipped (a non-finite gradient; the learners left weights and
    optimizer state alone): counted, and more than `trainer.max_skipped_steps` in a row stop the run."""
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
