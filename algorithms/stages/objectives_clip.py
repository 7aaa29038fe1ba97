"""Clipped-surrogate objectives sharing `core.clipped_surrogate`; they differ in the ratio bounds and in
the behaviour log-probs the ratio is taken against.

- ppo_clip: fixed bounds (PPO eps 0.2 -> 0.8/1.2; DAPO clip-higher 0.8/1.28), optional dual clip.
- dcpo: per-token dynamic bounds from the old token probability (arXiv 2509.02333 §4.1).
- bapo: adaptive (c_low, c_high) searched on the whole mini-batch in `prepare_minibatch` (arXiv 2510.18927),
  written to the stage fields `clip_low` / `clip_high` for the learner's loss.
- remix: ratio against the generating policy for replayed samples, clip window centred on pi_k / pi_behaviour
  (arXiv 2507.06892; see algorithms/remix.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.bapo import BAPO_MODES, adaptive_bounds, contribution_ratio
from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch, StageField
from algorithms.core import clip_fractions, clipped_surrogate
from algorithms.dcpo import dynamic_clip_bounds
from algorithms.registry import ParamError, meta, register
from algorithms.remix import centred_clip_bounds, reincarnated
from algorithms.stages.base import Metrics, Objective, StepPlan, need, wmax, wmean

#: BAPO's bounds searched on the whole mini-batch by `prepare_minibatch`, read by its loss on each micro-batch
CLIP_LOW = StageField("clip_low", per_token=False, doc="(N,) BAPO's lower ratio bound of the row's mini-batch")
CLIP_HIGH = StageField("clip_high", per_token=False, doc="(N,) BAPO's upper ratio bound of the row's mini-batch")
#: ReMix's choice, made once per step by `prepare`: rows whose ratio is taken against the behaviour log-probs
BEHAVIOUR_ROWS = StageField("behaviour_rows", per_token=False, doc="(N,) bool: ratio against the behaviour "
                                                                   "log-probs (ReMix)")


def clip_loss(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, low, high, dual: float | None,
              w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Contribution sum(l * w) of the clipped surrogate and its actor/* metrics."""
    per_tok = clipped_surrogate(logp, old, adv, low, high, dual)
    ratio = torch.exp((logp - old).clamp(-20.0, 20.0)).detach()
    metrics = wmean("actor/pg_loss", per_tok, w)
    metrics.update(wmean("actor/ppo_kl", old - logp, w))
    metrics.update(wmean("is/ratio_mean", ratio, w))
    metrics.update(wmax("is/ratio_max", ratio, w))
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


_CLIP_READS = frozenset({F.OLD_LOGP, F.ADVANTAGES})


@register("objective", "ppo_clip")
class PPOClip(Objective):
    Params = ClipParams
    reads = _CLIP_READS

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective ppo_clip")
        return clip_loss(logp, old, mb.advantages, self.params.low, self.params.high, self.params.dual_clip, w)


@register("objective", "dcpo")
class DCPOClip(Objective):
    reads = _CLIP_READS

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
    """Bounds searched on the whole mini-batch before its update, from the current policy's ratio
    (`cur_logp` against `old_logp`), then fixed for every micro-batch of that mini-batch."""

    writes = frozenset({CLIP_LOW, CLIP_HIGH})
    reads = _CLIP_READS | writes

    @dataclass
    class Params:  # defaults: the paper's (mode "paper"); the official code's: target 1, low .6->.8 step .05,
        # high 1.2->2.0 step .05 (see algorithms/bapo.py)
        target: float = meta(0.4, gt=0.0)       # paper: positive share rho0; code: pos/neg = rho0/(1-rho0)
        low_start: float = meta(0.6, gt=0.0, max=1.0)
        low_max: float = meta(0.9, gt=0.0, max=1.0)
        low_step: float = meta(0.02, gt=0.0)
        high_start: float = meta(1.2, min=1.0)
        high_max: float = meta(3.0, min=1.0)
        high_step: float = meta(0.05, gt=0.0)
        dual_clip: float | None = meta(3.0, gt=1.0)
        mode: str = meta("paper", choices=BAPO_MODES)

        def validate(self) -> None:
            if self.low_max < self.low_start:
                raise ParamError("low_max", f"must be >= low_start ({self.low_start})")
            if self.high_max < self.high_start:
                raise ParamError("high_max", f"must be >= high_start ({self.high_start})")

    @property
    def prepare_reads(self) -> frozenset[F]:
        base = {F.CUR_LOGP, F.OLD_LOGP, F.ADVANTAGES, F.LOSS_WEIGHTS}
        return frozenset(base | {F.SAMPLING_LOGP} if self.params.mode == "paper" else base)

    def prepare_minibatch(self, mb: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        cur = need(mb.cur_logp, "cur_logp", "objective bapo")
        old = need(mb.old_logp, "old_logp", "objective bapo")
        p = self.params
        ratio = torch.exp((cur - old).clamp(-20.0, 20.0))
        w = mb.loss_weights * mb.token_weights if mb.token_weights is not None else mb.loss_weights
        carrying = (w > 0).to(ratio.dtype)
        behaviour = torch.exp(mb.sampling_logp) if p.mode == "paper" else None  # pi_rollout(y_t)
        c_low, c_high = adaptive_bounds(ratio, mb.advantages, carrying, p.target, p.low_start, p.low_max,
                                        p.low_step, p.high_start, p.high_max, p.high_step, p.mode, behaviour)
        value = min(contribution_ratio(ratio, mb.advantages, carrying, c_low, c_high, p.mode, behaviour), 1e6)
        out = mb.copy()
        out.put(CLIP_LOW, torch.full((len(mb),), c_low, dtype=torch.float64))
        out.put(CLIP_HIGH, torch.full((len(mb),), c_high, dtype=torch.float64))
        return out, {"bapo/c_low_mean": c_low, "bapo/c_high_mean": c_high, "bapo/balance": value}

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        low, high = mb.get(CLIP_LOW), mb.get(CLIP_HIGH)
        if low is None or high is None:
            raise RuntimeError("objective bapo: call prepare_minibatch(mb) on the whole mini-batch (with "
                               "cur_logp) before slicing it into micro-batches")
        old = need(mb.old_logp, "old_logp", "objective bapo")
        return clip_loss(logp, old, mb.advantages, low.to(logp.dtype).unsqueeze(-1),
                         high.to(logp.dtype).unsqueeze(-1), self.params.dual_clip, w)


@register("objective", "remix")
class RemixClip(Objective):
    """ReMix's mix-policy clipped surrogate (algorithms/remix.py): rows from the replay buffer (`replayed`)
    or generated by an older policy than the newest in the batch take their ratio against their behaviour
    log-probs, with the clip window centred on pi_k / pi_behaviour (`centred`); from step `reincarnate_at`
    on, everything is on-policy and the reference is reset to the policy of that step."""

    prepare_reads = frozenset({F.REPLAYED, F.VERSIONS})
    writes = frozenset({BEHAVIOUR_ROWS})

    @dataclass
    class Params(ClipParams):
        behaviour: str = meta("auto", choices=("auto", "sampling", "old"))
        centred: bool = True
        reincarnate_at: int = meta(0, min=0)   # 0 = never

    @property
    def behaviour_ratio(self) -> bool:
        return self.params.behaviour != "old"

    @property
    def reads(self) -> frozenset[F]:
        base = _CLIP_READS | {F.SAMPLING_LOGP, BEHAVIOUR_ROWS}
        return frozenset(base | {F.PROX_LOGP} if self.params.centred else base)

    def plan(self, step: int) -> StepPlan | None:
        if not reincarnated(step, self.params.reincarnate_at):
            return None
        return StepPlan(off_policy=False, reference_from_step=self.params.reincarnate_at)

    def prepare(self, batch: RolloutBatch) -> dict[str, float]:
        n = len(batch)
        older = torch.zeros(n, dtype=torch.bool) if batch.replayed is None else batch.replayed.bool().cpu()
        if batch.versions is not None and n:
            older = older | (batch.versions.cpu() < batch.versions.max().cpu())
        use = {"auto": older, "sampling": torch.ones(n, dtype=torch.bool),
               "old": torch.zeros(n, dtype=torch.bool)}[self.params.behaviour]
        now = reincarnated(batch.step, self.params.reincarnate_at)
        if now:  # on-policy from the reincarnation on
            use = torch.zeros_like(use)
        batch.put(BEHAVIOUR_ROWS, use)
        return {"remix/replayed_frac": float(use.float().mean()) if n else 0.0, "remix/reincarnated": float(now)}

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective remix")
        rep = mb.get(BEHAVIOUR_ROWS)
        if rep is not None and bool(rep.any()):
            samp = need(mb.sampling_logp, "sampling_logp", "objective remix")
            old = torch.where(rep.to(old.device).unsqueeze(-1), samp, old)
        p = self.params
        if not p.centred:
            return clip_loss(logp, old, mb.advantages, p.low, p.high, p.dual_clip, w)
        low, high = centred_clip_bounds(need(mb.prox_logp, "prox_logp", "objective remix"), old, 1.0 - p.low,
                                        p.high - 1.0)
        contribution, metrics = clip_loss(logp, old, mb.advantages, low, high, p.dual_clip, w)
        metrics.update(wmean("remix/clip_centre_mean", low + (1.0 - p.low), w))
        return contribution, metrics
