"""Regularisers: per-token terms added to the loss and aggregated with the aggregation weights (not the
token-selection weights: a KL to the reference applies to every response token).

- none.
- kl: coef * KL(pi || ref), k1/k2/k3 (k3 = verl low_var_kl); GRPO eq. 3 uses k3 with beta 0.04. At coef 0
  it reads nothing, so no reference log-probs are computed.
- entropy: -coef * H (entropy bonus; needs the current forward's entropy).
- remix_kl: coef * [lam(t) KL(pi||base) + (1-lam(t)) KL(pi||precedent)] (ReMix KL-Convex, arXiv 2507.06892);
  base = ref_logp, precedent = prox_logp (the policy before this step's update), lam(t) = `convex_lambda`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import KL_KINDS, kl_penalty
from algorithms.registry import meta, register
from algorithms.remix import convex_kl, convex_lambda
from algorithms.stages.base import Metrics, Regularizer, need, wmean


@register("regularizer", "none")
class NoRegularizer(Regularizer):
    @dataclass
    class Params:
        pass


@register("regularizer", "kl")
class KLPenalty(Regularizer):
    @dataclass
    class Params:
        kind: str = meta("k3", choices=KL_KINDS)
        coef: float = meta(0.001, min=0.0)

    @property
    def reads(self) -> frozenset:
        """Nothing at coefficient 0: no reference actor starts and no reference pass runs."""
        return frozenset({F.REF_LOGP}) if self.params.coef > 0 else frozenset()

    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        if self.params.coef == 0:
            return None, {}
        kl = kl_penalty(logp, need(mb.ref_logp, "ref_logp", "regularizer kl"), self.params.kind)
        return self.params.coef * kl, wmean("actor/kl_loss", kl, mb.loss_weights)


@register("regularizer", "entropy")
class EntropyBonus(Regularizer):
    @dataclass
    class Params:
        coef: float = meta(0.001, min=0.0)

    """Reads the current forward's entropy, which the learner always passes to the loss."""

    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        ent = need(entropy, "the current entropy (loss(..., entropy=...))", "regularizer entropy")
        return -self.params.coef * ent, wmean("actor/entropy_bonus", ent, mb.loss_weights)


@register("regularizer", "remix_kl")
class RemixConvexKL(Regularizer):
    reads = frozenset({F.REF_LOGP, F.PROX_LOGP})

    @dataclass
    class Params:
        lam: float = meta(1.0, min=0.0, max=1.0)       # lambda before the decay
        lam_min: float = meta(0.5, min=0.0, max=1.0)   # lambda after it
        decay_start: int = meta(50, min=0)             # step the decay starts after
        decay_every: int = meta(10, min=1)
        decay_step: float = meta(0.1, min=0.0)
        coef: float = meta(0.001, min=0.0)
        kind: str = meta("k3", choices=KL_KINDS)

    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        p = self.params
        base = need(mb.ref_logp, "ref_logp", "regularizer remix_kl")
        prev = need(mb.prox_logp, "prox_logp", "regularizer remix_kl")
        lam = convex_lambda(mb.step, p.lam, p.lam_min, p.decay_start, p.decay_every, p.decay_step)
        kl = convex_kl(logp, base, prev, lam, p.kind)
        metrics = wmean("remix/convex_kl", kl, mb.loss_weights)
        metrics["remix/lambda"] = (lam * float(mb.loss_weights.sum()), float(mb.loss_weights.sum()))
        return p.coef * kl, metrics
