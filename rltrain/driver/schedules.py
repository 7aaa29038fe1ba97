"""Schedules: which batch the learner sees next (DESIGN.md "Schedules and multi-turn").

A schedule owns everything about *when* rollouts are made: the prompt sampler's cursor, rounds in
flight (prefetching), the sampler rewind a checkpoint needs, and staleness. The trainer asks it for
`next_batch` once per step and never branches on its name; `trainer.schedule` takes a registered
name or an import path `pkg.mod:Class` to a class with the same interface:

    cls(collector: BatchCollector, sampler: PromptSampler, total_steps: int)
    cls.overlaps_generation: bool        # generation runs during the update (CPU threads are split)
    next_batch(step, version) -> (RolloutBatch, metrics)
    state_dict() -> dict; load_state_dict(dict)

- `sync`: generate, then learn; every batch is made by the current weights.
- `one_step_off`: step t+1's first generation round is submitted as soon as step t's batch is
  collected, so the engines generate it (with the weights of sync t-1) while the learners update;
  the weight sync queues behind it on each worker. Batches after the first are one version stale
  and train against their behaviour log-probs (the collector's rule). A checkpoint taken with a
  round in flight stores the sampler cursor from before that round, so a resumed run takes the
  same prompts again.
"""

from __future__ import annotations

import importlib
from typing import Any

from algorithms import RolloutBatch
from rltrain.data import PromptSampler

SCHEDULES: dict[str, str] = {
    "sync": "rltrain.driver.schedules:SyncSchedule",
    "one_step_off": "rltrain.driver.schedules:OneStepOffSchedule",
}


def check_schedule_name(name: str) -> None:
    """Raise ValueError listing the allowed schedules unless `name` is registered or an import path."""
    if name in SCHEDULES:
        return
    if isinstance(name, str) and name.count(":") == 1 and all(name.split(":")):
        return
    raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)} (or an import path pkg.mod:Class)")


def schedule_class(name: str) -> type:
    check_schedule_name(name)
    mod, _, attr = SCHEDULES.get(name, name).partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"trainer.schedule={name!r}: cannot import it: {e}") from None


class SyncSchedule:
    overlaps_generation = False

    def __init__(self, collector, sampler: PromptSampler, total_steps: int) -> None:
        self.collector, self.sampler, self.total_steps = collector, sampler, total_steps

    def next_batch(self, step: int, version: int) -> tuple[RolloutBatch, dict[str, float]]:
        return self.collector.collect(step, version, self.sampler)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])


class OneStepOffSchedule(SyncSchedule):
    overlaps_generation = True

    def __init__(self, collector, sampler: PromptSampler, total_steps: int) -> None:
        super().__init__(collector, sampler, total_steps)
        self.in_flight = None                       # the next step's first round (a PendingRollout)
        self._sampler_before: dict | None = None    # the cursor before that round's prompts were taken

    def next_batch(self, step: int, version: int) -> tuple[RolloutBatch, dict[str, float]]:
        first, self.in_flight = self.in_flight, None
        batch, metrics = self.collector.collect(step, version, self.sampler, first)
        if step < self.total_steps:
            self.prefetch()
        return batch, metrics

    def prefetch(self) -> None:
        """Submit the next step's first generation round now (it runs during the update)."""
        self._sampler_before = self.sampler.state_dict()
        self.in_flight = self.collector.submit(self.sampler.take(self.collector.prompts_per_step))

    def in_flight_prompt_keys(self) -> list[str]:
        return [r.key for r in self.in_flight.rows] if self.in_flight is not None else []

    def state_dict(self) -> dict[str, Any]:
        # a round in flight is not in the checkpoint: a resumed run takes its prompts again
        sampler = self._sampler_before if self.in_flight is not None else self.sampler.state_dict()
        return {"sampler": sampler}
