"""The composed algorithm the trainer drives: build(spec) -> Algorithm.

Per step: keep() (data policy, before refilling) -> prepare() once on the full update batch (advantages,
aggregation weights `loss_weights`, token-selection weights extra["token_weights"], algorithm state) ->
for each mini-batch prepare_minibatch() (BAPO bounds over the whole mini-batch) -> loss() per micro-batch
slice, whose returned values sum to the full-batch loss whatever the split.

loss = sum(objective per-token loss * loss_weights * token_weights) + sum(regulariser * loss_weights)
(the policy term sees the token selection; the regulariser sees every response token).
Metric actor/entropy: the current forward's entropy when passed to loss(), else batch.entropy (old pass).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

import algorithms.stages  # noqa: F401  (fills the registry)
from algorithms.batch import RolloutBatch
from algorithms.presets import resolve_spec
from algorithms.registry import STAGE_KINDS, make_stage
from algorithms.stages.base import Metrics, wmean


def reduce_metrics(metric_dicts: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Exact reduction of (weighted_sum, weight) metrics over micro-batches/ranks: sum(ws)/sum(w).
    Plain numbers count as (value, 1). Keys whose total weight is 0 are left out."""
    acc: dict[str, list[float]] = {}
    for d in metric_dicts:
        for k, v in d.items():
            s, w = (float(v[0]), float(v[1])) if isinstance(v, (tuple, list)) else (float(v), 1.0)
            a = acc.setdefault(k, [0.0, 0.0])
            a[0] += s
            a[1] += w
    return {k: s / w for k, (s, w) in acc.items() if w != 0}


class Algorithm:
    """Six stages composed; nothing here branches on an algorithm's name."""

    def __init__(self, stages: dict[str, Any], spec: dict[str, dict[str, Any]]) -> None:
        self.stages = stages
        self.spec = spec
        self.data_policy = stages["data_policy"]
        self.advantage = stages["advantage"]
        self.token_selector = stages["token_selector"]
        self.objective = stages["objective"]
        self.regularizer = stages["regularizer"]
        self.aggregation = stages["aggregation"]
        req = set().union(*(getattr(s, "requires", frozenset()) for s in stages.values()))
        self.requires: frozenset[str] = frozenset(req)
        self.group_aligned_microbatches: bool = any(getattr(s, "group_aligned", False) for s in stages.values())

    def __repr__(self) -> str:
        return f"Algorithm({self.spec})"

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        return self.data_policy.keep(batch).to(torch.bool)

    def prepare(self, batch: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        b = batch.copy()
        adv, metrics = self.advantage.compute(b)
        b.advantages = adv.to(torch.float32)
        w_agg = self.aggregation.weights(b)
        sel, renormalise, sel_metrics = self.token_selector.select(b)
        metrics.update(sel_metrics)
        if sel is not None:
            if renormalise:
                w_sel = self.aggregation.weights(b, b.response_mask * sel)
                sel = torch.where(w_agg > 0, w_sel / w_agg.clamp(min=1e-30), torch.zeros_like(w_sel))
            b.extra["token_weights"] = sel.to(torch.float32)
        b.loss_weights = w_agg.to(torch.float32)
        metrics.update(self.objective.prepare(b))
        return b, metrics

    def prepare_minibatch(self, mb: RolloutBatch) -> RolloutBatch:
        return self.objective.prepare_minibatch(mb)

    def schedule(self, step: int) -> dict[str, float]:
        """Data-layer hints of a scheduled algorithm (ReMix replay fraction / UTD / reincarnation); {} if none."""
        return self.objective.schedule(step)

    def loss(self, logp: torch.Tensor, mb: RolloutBatch,
             entropy: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
        if mb.loss_weights is None or mb.advantages is None:
            raise RuntimeError("algo.loss needs a batch that went through algo.prepare (advantages, loss_weights)")
        mb = mb.to(logp.device)
        w_agg = mb.loss_weights.to(logp.dtype)
        tw = mb.extra.get("token_weights")
        w = w_agg * tw.to(logp.dtype) if tw is not None else w_agg
        loss, metrics = self.objective.loss(logp, mb, w)
        reg, reg_metrics = self.regularizer.per_token(logp, mb, entropy)
        if reg is not None:
            loss = loss + (reg * w_agg).sum()
            metrics.update(reg_metrics)
        ent = entropy if entropy is not None else mb.entropy  # old-pass entropy when no current one is given
        if ent is not None:
            metrics.update(wmean("actor/entropy", ent, w_agg))
        return loss, metrics

    def state_dict(self) -> dict[str, Any]:
        return {kind: stage.state_dict() for kind, stage in self.stages.items()
                if hasattr(stage, "state_dict") and stage.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for kind, state in d.items():
            if kind in self.stages and hasattr(self.stages[kind], "load_state_dict"):
                self.stages[kind].load_state_dict(state)


def build(spec: dict[str, Any]) -> Algorithm:
    """Algorithm from a spec {"preset": "dapo+forking", <stage>: {...}}; raises ConfigError on a bad spec."""
    resolved = resolve_spec(spec)
    stages = {kind: make_stage(kind, resolved[kind], f"algorithm.{kind}") for kind in STAGE_KINDS}
    return Algorithm(stages, resolved)
