"""Schedules: which batch the learner sees next (DESIGN.md "Schedules and multi-turn").

A schedule owns everything about *when* rollouts are made: the prompt sampler's cursor, rounds in
flight (prefetching), the sampler rewind a checkpoint needs, and staleness. The trainer asks it for
`next_batch` once per step and never branches on its name; `trainer.schedule` takes a registered
name or an import path `pkg.mod:Class` to a class with the same interface:

    cls(collector: BatchCollector, sampler: PromptSampler, cfg: Config)
    cls.overlaps_generation(cfg: Config) -> bool     # generation runs during the update
    cls.check_config(cfg: Config)                    # optional: ValueError for settings it cannot run with
    next_batch(step, version) -> (RolloutBatch, metrics)
    observe(prepared batch) -> metrics               # after the algorithm's prepare (advantages set)
    set_off_policy(bool)                             # False: the algorithm wants on-policy batches now
    updates_per_batch: int                           # optimizer passes over each batch (x learner.epochs)
    state_dict() -> dict; load_state_dict(dict)

- `sync`: generate, then learn; every batch is made by the current weights.
- `async` with `trainer.max_staleness: k`: generation runs up to k weight versions ahead of the
  learner. After step t's batch is collected, rounds for steps t+1..t+k are in flight; each worker
  runs calls in order, so the round for step t+k is generated before the sync that follows step t,
  with the weights of sync t-1, and trains at step t+k against its behaviour log-probs (staleness k
  from step k+1 on). k = 0 is exactly `sync`; k = 1 is `one_step_off`.
- `one_step_off`: `async` with k = 1.
- `replay` (`replay.*`): each update batch is `replay.fraction` groups replayed from the buffer
  (`rltrain/driver/flow/replay.py`: groups of the last `replay.depth` steps, at most `replay.max_staleness`
  versions old, with their behaviour log-probs and generation-time advantages) and the rest fresh, so
  a step generates fewer rollouts; `replay.updates_per_batch` passes over each batch. The buffer is in
  the checkpoint.
A checkpoint taken with rounds in flight stores their prompts (and samples per prompt), so a resumed run
takes the same prompts again (it regenerates them with the restored weights) before drawing new ones.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from algorithms import RolloutBatch
from rltrain.data import PromptSampler
from rltrain.driver.flow.replay import ReplayBuffer, replay_batch
from rltrain.registry import SCHEDULES, check_schedule_name, schedule_class

__all__ = ["SCHEDULES", "AsyncSchedule", "OneStepOffSchedule", "ReplaySchedule", "SyncSchedule",
           "check_schedule_name", "schedule_class"]


class SyncSchedule:
    updates_per_batch = 1

    def __init__(self, collector, sampler: PromptSampler, cfg) -> None:
        self.collector, self.sampler, self.total_steps = collector, sampler, cfg.trainer.steps
        self.off_policy = True

    @classmethod
    def overlaps_generation(cls, cfg) -> bool:
        return False

    @classmethod
    def check_config(cls, cfg) -> None:
        """Settings this schedule cannot run with, found when the config is loaded (ValueError naming keys)."""
        if cfg.placement == "colocated" and cls.overlaps_generation(cfg):
            raise ValueError(f"placement: colocated runs generation and the update in one process, one after the "
                             f"other; trainer.schedule={cfg.trainer.schedule} overlaps them (use sync or replay)")

    def next_batch(self, step: int, version: int) -> tuple[RolloutBatch, dict[str, float]]:
        return self.collector.collect(step, version, self.sampler)

    def observe(self, batch: RolloutBatch) -> dict[str, float]:
        return {}

    def set_off_policy(self, allowed: bool) -> None:
        self.off_policy = allowed

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "collector": self.collector.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.collector.load_state_dict(state["collector"])


class AsyncSchedule(SyncSchedule):
    def __init__(self, collector, sampler: PromptSampler, cfg) -> None:
        super().__init__(collector, sampler, cfg)
        self.max_staleness = self.staleness_of(cfg)
        self.in_flight: deque = deque()  # PendingRollouts for the next steps, oldest first
        self.resubmit: deque[tuple[list, list[int] | None]] = deque()  # (rows, samples per row) from a checkpoint

    @classmethod
    def staleness_of(cls, cfg) -> int:
        return cfg.trainer.max_staleness

    @classmethod
    def overlaps_generation(cls, cfg) -> bool:
        return cls.staleness_of(cfg) > 0

    def next_batch(self, step: int, version: int) -> tuple[RolloutBatch, dict[str, float]]:
        first = self.in_flight.popleft() if self.in_flight else (
            self.collector.submit(*self.resubmit.popleft()) if self.resubmit else None)
        batch, metrics = self.collector.collect(step, version, self.sampler, first)
        ahead = self.max_staleness if self.off_policy else 0
        while len(self.in_flight) < ahead and step + len(self.in_flight) < self.total_steps:
            self.prefetch()
        return batch, metrics

    def prefetch(self) -> None:
        """Submit one more generation round now (the engines run it during the coming updates): a round a
        checkpoint had in flight first, else prompts the sampler draws."""
        self.in_flight.append(self.collector.submit(*self.resubmit.popleft()) if self.resubmit else
                              self.collector.draw(self.sampler, self.collector.prompts_per_step))

    def in_flight_prompt_keys(self) -> list[list[str]]:
        """The prompt keys of each round in flight, oldest first."""
        return [[r.key for r in pending.rows] for pending in self.in_flight]

    def state_dict(self) -> dict[str, Any]:
        # rounds in flight are not in the checkpoint, their prompts are: a resumed run generates them again
        # (with the restored weights) before drawing new ones; the sampler is saved after drawing them
        rounds = [(p.rows, p.n_per_row) for p in self.in_flight] + list(self.resubmit)
        return {**super().state_dict(),
                "in_flight": [{"keys": [r.key for r in rows], "n_per_row": ns} for rows, ns in rounds]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        by_key = {r.key: r for r in self.sampler.rows}
        self.in_flight.clear()
        self.resubmit = deque(([by_key[k] for k in rnd["keys"]], rnd["n_per_row"]) for rnd in state["in_flight"])


class OneStepOffSchedule(AsyncSchedule):
    @classmethod
    def staleness_of(cls, cfg) -> int:
        return 1


class ReplaySchedule(SyncSchedule):
    def __init__(self, collector, sampler: PromptSampler, cfg) -> None:
        super().__init__(collector, sampler, cfg)
        rc = cfg.replay
        self.fraction, self.updates = rc.fraction, rc.updates_per_batch
        self.buffer = ReplayBuffer(rc.depth, rc.max_staleness, rc.sampling, seed=cfg.trainer.seed)

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.env.name is not None:
            raise ValueError("env.name is set: the replay buffer stores single-turn samples only; use trainer.schedule "
                             "sync or async")

    @property
    def updates_per_batch(self) -> int:
        return self.updates if self.off_policy else 1

    def next_batch(self, step: int, version: int) -> tuple[RolloutBatch, dict[str, float]]:
        self.buffer.evict(step, version)
        n = self.collector.prompts_per_step
        n_replay = min(round(self.fraction * n), len(self.buffer.groups())) if self.off_policy else 0
        fresh, metrics = self.collector.collect(step, version, self.sampler, n_groups=n - n_replay)
        metrics.update({"replay/buffer_samples": float(len(self.buffer)),
                        "replay/buffer_mb": self.buffer.nbytes / 2**20, "replay/fraction": 0.0})
        if not n_replay:
            return fresh, metrics
        old = replay_batch(self.buffer.sample_groups(n_replay), fresh.pad_id, step, fresh.max_response_len,
                           first_group=int(fresh.group_ids.max()) + 1)
        fresh.old_logp = fresh.sampling_logp.clone() if fresh.old_logp is None else fresh.old_logp
        fresh.advantages = torch.zeros_like(fresh.response_mask)  # computed by the algorithm's prepare
        for f in self.collector.algo.replay_fields:  # (so are the advantage stage's other outputs)
            if old.get(f) is not None:
                like = fresh.response_mask if old.get(f).dim() == 2 else fresh.rewards
                fresh.put(f, torch.zeros_like(like, dtype=torch.float32))
        width = max(fresh.response_ids.shape[1], old.response_ids.shape[1])
        model_width = max(fresh.input_ids.shape[1], old.input_ids.shape[1])
        batch = RolloutBatch.cat([fresh.padded(width, model_width), old.padded(width, model_width)])
        ages = (version - batch.versions).float()
        metrics.update({"replay/fraction": len(old) / len(batch),
                        "replay/mean_age": float((version - old.versions).float().mean()),
                        "rollout/staleness_mean": float(ages.mean()), "rollout/staleness_max": float(ages.max())})
        return batch, metrics

    def observe(self, batch: RolloutBatch) -> dict[str, float]:
        self.buffer.add(batch, self.collector.algo.replay_fields)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
