"""Where the rollout engines live, chosen once from the placement plan: each in a rollout-worker actor of
its own (`placement: separate`), or the one engine inside learner rank 0's actor (`placement: colocated`;
the plan marks it with `in_actor="learner/0"`). `ActorSet` asks the hosting object how to build learner
ranks, which actors form the rollout group, whether a lost engine can be replaced alone and what to stop;
it never reads the placement's name.
"""

from __future__ import annotations

from typing import Any, Callable

from rltrain.workers.colocated import ColocatedLearner
from rltrain.workers.group import RankGroup
from rltrain.workers.learner import Learner
from rltrain.workers.planner import Plan

__all__ = ["EnginesInOwnActors", "EngineInLearner", "engine_hosting"]


class EnginesInOwnActors:
    """Each engine in a RolloutWorker actor of its own: replaceable alone, stopped with the rollout group."""

    replaceable = True

    def learner_rank(self, rank: int, worker_kwargs: Callable[[int], dict[str, Any]]) -> tuple[type, dict[str, Any]]:
        return Learner, {}

    def rollout_actors(self, learners: list, spawn: Callable[[int], Any], n_engines: int) -> list:
        return [spawn(w) for w in range(n_engines)]

    def stop(self, workers: RankGroup) -> None:
        workers.kill()


class EngineInLearner:
    """The one engine inside learner rank 0's actor (a ColocatedLearner): the rollout group is that actor, so
    the engine lives and dies with it and cannot be replaced alone."""

    replaceable = False

    def learner_rank(self, rank: int, worker_kwargs: Callable[[int], dict[str, Any]]) -> tuple[type, dict[str, Any]]:
        return (ColocatedLearner, {"worker": worker_kwargs(0)}) if rank == 0 else (Learner, {})

    def rollout_actors(self, learners: list, spawn: Callable[[int], Any], n_engines: int) -> list:
        return learners[:1]

    def stop(self, workers: RankGroup) -> None:
        pass  # stopped with the learners


def engine_hosting(plan: Plan) -> EnginesInOwnActors | EngineInLearner:
    """The hosting the plan's engines ask for (a colocated plan's engine lives in learner/0)."""
    inside = any(a.in_actor == "learner/0" for a in plan.actors if a.role == "rollout")
    return EngineInLearner() if inside else EnginesInOwnActors()
