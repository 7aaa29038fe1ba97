"""Clipped-surrogate objectives sharing `core.clipped_surrogate`; they differ in the ratio bounds and in
the behaviour log-probs the ratio is taken against.

- ppo_clip: fixed bounds (PPO eps 0.2 -> 0.8/1.2; DAPO clip-higher 0.8/1.28), optional dual clip.
- dcpo: per-token dynamic bounds from the old token probability (arXiv 2509.02333 §4.1).
- bapo: adaptive (c_low, c_high) searched on the whole mini-batch in `prepare_minibatch` (arXiv 2510.18927).
- remix: ratio against the generating policy for replayed samples (arXiv 2507.06892, our reading).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.bapo import BAPO_MODES, adaptive_bounds, contribution_ratio
from algorithms.batch import RolloutBatch
from algorithms.core import clip_fractions, clipped_surrogate
from algorithms.dcpo import dynamic_clip_bounds
from algorithms.registry import ParamError, meta, register
from algorithms.remix import RemixSchedule
from algorithms.stages.base import Metrics, Objective, need, wmean


def clip_loss(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, low, high, dual: float | None,
              w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Contribution sum(l * w) of the clipped surrogate and its actor/* metrics."""
    per_tok = clipped_surrogate(logp, old, adv, low, high, dual)
    ratio = torch.exp((logp - old).clamp(-20.0, 20.0)).detach()
    metrics = wmean("actor/pg_loss", per_tok, w)
    metrics.update(wmean("actor/ppo_kl", old - logp, w))
    for key, ind in clip_fractions(ratio, adv, low, high, dual).items():
        metrics.update(wmean(f"actor/{key}", ind, w))
    return (per_tok * w).sum(), metrics


@dataclass
class ClipParams:
    low: float = meta(0.8, gt=0.0, max=1.0)
    high: float = meta(1.2, min=1.0)
    dual_clip: float | None = meta(None, gt=1.0)

    def validate(self) -> None:
        if self.dual_clip is not None and self.dual_clip <= self.high:
            raise ParamError("dual_clip", f"must be > high ({self.high}), got {self.dual_clip}")


@register("objective", "ppo_clip")
class PPOClip(Objective):
    Params = ClipParams

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective ppo_clip")
        return clip_loss(logp, old, mb.advantages, self.params.low, self.params.high, self.params.dual_clip, w)


@register("objective", "dcpo")
class DCPOClip(Objective):
    @dataclass
    class Params:
        eps_low: float = meta(0.16, min=0.0)
        eps_high: float = meta(0.2, min=0.0)
        max_high: float = meta(10.0, gt=1.0)
        dual_clip: float | None = meta(10.0, gt=1.0)

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective dcpo")
        p = self.params
        low, high = dynamic_clip_bounds(torch.exp(old), p.eps_low, p.eps_high, p.max_high)
        contribution, metrics = clip_loss(logp, old, mb.advantages, low, high, p.dual_clip, w)
        metrics.update(wmean("dcpo/clip_low_mean", low, w))
        metrics.update(wmean("dcpo/clip_high_mean", high, w))
        return contribution, metrics


@register("objective", "bapo")
class BAPOClip(Objective):
    """Needs the current-policy log-probs of the whole mini-batch (extra["cur_logp"]) before the update."""

    needs_cur_logp = True

    @dataclass
    class Params:
        target: float = meta(1.0, gt=0.0)       # pos/neg = rho0/(1-rho0); yaml default 1 (rho0 = 0.5)
        low_start: float = meta(0.6, gt=0.0, max=1.0)
        low_max: float = meta(0.8, gt=0.0, max=1.0)
        low_step: float = meta(0.05, gt=0.0)
        high_start: float = meta(1.2, min=1.0)
        high_max: float = meta(2.0, min=1.0)
        high_step: float = meta(0.05, gt=0.0)
        dual_clip: float | None = meta(3.0, gt=1.0)
        mode: str = meta("code", choices=BAPO_MODES)

        def validate(self) -> None:
            if self.low_max < self.low_start:
                raise ParamError("low_max", f"must be >= low_start ({self.low_start})")
            if self.high_max < self.high_start:
                raise ParamError("high_max", f"must be >= high_start ({self.high_start})")

    def __init__(self, params) -> None:
        super().__init__(params)
        self.last: dict[str, float] = {}

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"cur_logp_prepass"})

    def prepare_minibatch(self, mb: RolloutBatch) -> RolloutBatch:
        cur = need(mb.extra.get("cur_logp"), "extra['cur_logp']", "objective bapo")
        old = need(mb.old_logp, "old_logp", "objective bapo")
        p = self.params
        ratio = torch.exp((cur - old).clamp(-20.0, 20.0))
        w = mb.loss_weights * mb.extra["token_weights"] if "token_weights" in mb.extra else mb.loss_weights
        carrying = (w > 0).to(ratio.dtype)
        c_low, c_high = adaptive_bounds(ratio, mb.advantages, carrying, p.target, p.low_start, p.low_max,
                                        p.low_step, p.high_start, p.high_max, p.high_step, p.mode)
        value = min(contribution_ratio(ratio, mb.advantages, carrying, c_low, c_high, p.mode), 1e6)
        self.last = {"c_low": c_low, "c_high": c_high, "pos_neg_ratio": value}
        out = mb.copy()
        n = len(mb)
        out.extra["bapo_c_low"] = torch.full((n,), c_low, dtype=torch.float64)
        out.extra["bapo_c_high"] = torch.full((n,), c_high, dtype=torch.float64)
        out.extra["bapo_pos_neg_ratio"] = torch.full((n,), value, dtype=torch.float64)
        return out

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        if "bapo_c_low" not in mb.extra:
            raise RuntimeError("objective bapo: call algo.prepare_minibatch(mb) on the whole mini-batch (with "
                               "extra['cur_logp']) before slicing it into micro-batches")
        old = need(mb.old_logp, "old_logp", "objective bapo")
        low = mb.extra["bapo_c_low"].to(logp.dtype).unsqueeze(-1)
        high = mb.extra["bapo_c_high"].to(logp.dtype).unsqueeze(-1)
        contribution, metrics = clip_loss(logp, old, mb.advantages, low, high, self.params.dual_clip, w)
        row_w = w.sum(-1)
        for key in ("c_low", "c_high", "pos_neg_ratio"):
            metrics.update(wmean(f"bapo/{key}", mb.extra[f"bapo_{key}"].to(row_w.dtype), row_w))
        return contribution, metrics

    def state_dict(self) -> dict:
        return {"last": dict(self.last)}

    def load_state_dict(self, d: dict) -> None:
        self.last = dict(d.get("last", {}))


@register("objective", "remix")
class RemixClip(Objective):
    """Mixed-policy clipped surrogate; extra["remix_replayed"] (N,) marks replayed rows (set in prepare
    from extra["replayed"], else versions older than the newest in the batch)."""

    @dataclass
    class Params(ClipParams):
        behaviour: str = meta("auto", choices=("auto", "sampling", "old"))
        replay_fraction: float = meta(0.5, min=0.0, max=1.0)
        utd: int = meta(2, min=1)
        buffer_depth: int = meta(2, min=1)
        reincarnate_at: int = meta(0, min=0)

    def __init__(self, params) -> None:
        super().__init__(params)
        p = params
        self.sched = RemixSchedule(p.replay_fraction, p.utd, p.buffer_depth, p.reincarnate_at)

    def schedule(self, step: int) -> dict[str, float]:
        return self.sched.at(step)

    def prepare(self, batch: RolloutBatch) -> dict[str, float]:
        just = self.sched.observe(batch.step)
        replayed = batch.extra.get("replayed")
        if replayed is None:
            replayed = (batch.versions < batch.versions.max()) if batch.versions is not None and len(batch) \
                else torch.zeros(len(batch), dtype=torch.bool)
        use_sampling = {"auto": replayed.bool(), "sampling": torch.ones(len(batch), dtype=torch.bool),
                        "old": torch.zeros(len(batch), dtype=torch.bool)}[self.params.behaviour]
        if self.sched.reincarnated:
            use_sampling = torch.zeros_like(use_sampling)
        batch.extra["remix_replayed"] = use_sampling
        return {"remix/replayed_frac": float(use_sampling.float().mean()) if len(batch) else 0.0,
                "remix/reincarnated": float(self.sched.reincarnated), "remix/reincarnated_now": float(just)}

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective remix")
        rep = mb.extra.get("remix_replayed")
        if rep is not None and bool(rep.any()):
            samp = need(mb.sampling_logp, "sampling_logp", "objective remix")
            old = torch.where(rep.to(old.device).unsqueeze(-1), samp, old)
        p = self.params
        return clip_loss(logp, old, mb.advantages, p.low, p.high, p.dual_clip, w)

    def state_dict(self) -> dict:
        return self.sched.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.sched.load_state_dict(d)
