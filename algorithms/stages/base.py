"""Base classes of the seven stage kinds and the exact-reduction metric helper.

Stage signatures (one per kind), with the phase each runs in:
- data policy    (driver, on scored rollouts): keep(batch) -> bool (N,)
- advantage      (driver): compute(batch) -> (advantages (N,T), metrics); may also fill its other `writes`
- aggregation    (driver): weights(batch, mask=None) -> (N,T) global aggregation weights
- token selector (driver): select(batch) -> (weights (N,T) | None, renormalise, metrics)
- objective      (driver hooks) prepare(batch) -> metrics, prepare_minibatch(mb) -> (mb, metrics);
                 (learner) loss(logp, mb, w) -> (scalar contribution, metrics), w = effective token weights
- regularizer    (learner): per_token(logp, mb, entropy) -> ((n,T) | None, metrics), aggregated with loss_weights
- correction     (learner): weights(mb) -> ((n,T) | None, metrics), multiplies the policy term's weights

Every stage declares the batch fields it reads and writes (`reads`, `writes`; objectives also
`prepare_reads` for their driver hooks) as `BatchField` members; `algorithms.build` checks the flow.
State (what a stage keeps across steps) lives only in the driver part; the learner part's stages are
frozen after construction, so a loss that tries to keep state fails loudly.
Metrics returned by learner-side stages are {name: (weighted_sum, weight)} so they reduce exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from algorithms.batch import BatchField, RolloutBatch

Metrics = dict[str, "tuple[float, float] | Max"]


class Max(float):
    """A metric value reduced by max over micro-batches and ranks (not averaged): `reduce_metrics`."""


def wmean(name: str, x: torch.Tensor, w: torch.Tensor) -> Metrics:
    """{name: (sum(x*w), sum(w))} with x detached."""
    x = x.detach().to(torch.float64)
    w = w.detach().to(torch.float64)
    return {name: (float((x * w).sum()), float(w.sum()))}


def wmax(name: str, x: torch.Tensor, w: torch.Tensor) -> Metrics:
    """{name: Max(max of x where w > 0)} (nothing when no token carries weight)."""
    sel = x.detach()[w.detach() > 0]
    return {name: Max(float(sel.max()))} if sel.numel() else {}


def need(value: torch.Tensor | None, what: str, stage: str) -> torch.Tensor:
    """`value`, or a clear error naming the missing batch field."""
    if value is None:
        raise ValueError(f"{stage} needs {what}, which this batch does not have")
    return value


@dataclass
class StepPlan:
    """What the driver part asks of the runtime at the start of a step (merged over stages)."""

    off_policy: bool = True               # False: the schedule stops replaying / running ahead
    reference_from_step: int | None = None  # the reference is the policy as it was at this step


class Stage:
    """Common behaviour: reads and writes nothing, no state; `freeze()` forbids attribute changes."""

    name: str = ""
    group_aligned: bool = False  # micro-batches must hold whole groups (e.g. PACS's leave-one-out baseline)

    def __init__(self, params: Any = None) -> None:
        self.params = params

    @property
    def reads(self) -> frozenset[BatchField]:
        return frozenset()

    @property
    def writes(self) -> frozenset[BatchField]:
        return frozenset()

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, key: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise RuntimeError(f"stage {self.name or type(self).__name__!r} tried to set {key!r} in the learner's "
                               "loss part: loss() must be pure; keep state in a driver hook (prepare) and "
                               "pass it through a declared batch field")
        object.__setattr__(self, key, value)

    def plan(self, step: int) -> StepPlan | None:
        """Driver: requests for the runtime at the start of `step` (None = nothing)."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass


class DataPolicy(Stage):
    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        raise NotImplementedError


class AdvantageEstimator(Stage):
    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


class TokenSelector(Stage):
    def select(self, batch: RolloutBatch) -> tuple[torch.Tensor | None, bool, dict[str, float]]:
        return None, False, {}


class Objective(Stage):
    #: True when the objective takes its ratio against the behaviour (sampling) log-probs itself on
    #: off-policy rows; it cannot be combined with a correction that does the same by weights
    behaviour_ratio: bool = False

    @property
    def prepare_reads(self) -> frozenset[BatchField]:
        """Fields the driver hooks (prepare, prepare_minibatch) read."""
        return frozenset()

    def prepare(self, batch: RolloutBatch) -> dict[str, float]:
        """Driver, once per step on the full batch (after advantages and weights are set)."""
        return {}

    def prepare_minibatch(self, mb: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        """Driver, on each whole mini-batch before it is cut into rank shards and micro-batches."""
        return mb, {}

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        raise NotImplementedError


class Regularizer(Stage):
    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        return None, {}


class Aggregation(Stage):
    @property
    def writes(self) -> frozenset[BatchField]:
        return frozenset({BatchField.LOSS_WEIGHTS})

    def weights(self, batch: RolloutBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Correction(Stage):
    #: True when the stage weights tokens by pi_old / pi_behaviour: pi_old must then be the learner's own
    #: log-probs at this step on every row, off-policy ones included (the runtime computes them), and
    #: the stage, not the ratio, carries the behaviour policy (decoupled PPO)
    old_logp_from_learner: bool = False

    def weights(self, mb: RolloutBatch) -> tuple[torch.Tensor | None, Metrics]:
        return None, {}


def real_tokens(mb: RolloutBatch) -> torch.Tensor:
    """(N,T) 1.0 on the response tokens of rows that carry loss weight (zero-weight padding rows excluded)."""
    return (mb.loss_weights.abs().sum(-1, keepdim=True) > 0).to(mb.response_mask.dtype) * mb.response_mask


def seq_to_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N,T) advantages broadcast over response tokens (0 on masked positions)."""
    return adv.to(torch.float32).unsqueeze(-1) * mask.to(torch.float32)


def adv_metrics(adv: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """critic/advantages/{mean,max,min} over response tokens."""
    sel = adv[mask > 0]
    if sel.numel() == 0:
        return {}
    return {"critic/advantages/mean": float(sel.mean()), "critic/advantages/max": float(sel.max()),
            "critic/advantages/min": float(sel.min())}
