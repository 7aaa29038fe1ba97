"""Base classes of the six stage kinds and the exact-reduction metric helper.

Stage signatures (one per kind):
- data policy:    keep(batch) -> bool (N,)
- advantage:      compute(batch) -> (advantages (N,T), metrics)        may add per-row tensors to batch.extra
- token selector: select(batch) -> (weights (N,T) | None, renormalise, metrics)
- objective:      loss(logp, mb, w) -> (scalar contribution, metrics)  w = effective (N,T) token weights
- regularizer:    per_token(logp, mb, entropy) -> ((n,T) | None, metrics), aggregated with mb.loss_weights
- aggregation:    weights(batch) -> (N,T) aggregation weights
Metrics returned by loss-side stages are {name: (weighted_sum, weight)} so they reduce exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from algorithms.batch import RolloutBatch

Metrics = dict[str, tuple[float, float]]


def wmean(name: str, x: torch.Tensor, w: torch.Tensor) -> Metrics:
    """{name: (sum(x*w), sum(w))} with x detached."""
    x = x.detach().to(torch.float64)
    w = w.detach().to(torch.float64)
    return {name: (float((x * w).sum()), float(w.sum()))}


def need(value: torch.Tensor | None, what: str, stage: str) -> torch.Tensor:
    """`value`, or a clear error naming the missing batch field."""
    if value is None:
        raise ValueError(f"{stage} needs {what}, which this batch does not have")
    return value


class Stage:
    """Common behaviour: no requirements, no state."""

    name: str = ""

    def __init__(self, params: Any = None) -> None:
        self.params = params

    @property
    def requires(self) -> frozenset[str]:
        return frozenset()

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
    group_aligned: bool = False
    needs_cur_logp: bool = False

    def prepare(self, batch: RolloutBatch) -> dict[str, float]:
        """Once per step on the full batch (after advantages and weights are set)."""
        return {}

    def prepare_minibatch(self, mb: RolloutBatch) -> RolloutBatch:
        return mb

    def schedule(self, step: int) -> dict[str, float]:
        return {}

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        raise NotImplementedError


class Regularizer(Stage):
    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        return None, {}


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
