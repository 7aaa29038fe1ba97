"""Regularisers: per-token terms added to the loss and aggregated with the aggregation weights (not the
token-selection weights: a KL to the reference applies to every response token).

- none.
- kl: coef * KL(pi || ref), k1/k2/k3 (k3 = verl low_var_kl); GRPO eq. 3 uses k3 with beta 0.04.
- entropy: -coef * H (entropy bonus; needs the current forward's entropy).
- remix_kl: coef * [lam KL(pi||base) + (1-lam) KL(pi||precedent)] (ReMix KL-Convex, arXiv 2507.06892);
  base = ref_logp, precedent = old_logp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import KL_KINDS, kl_penalty
from algorithms.registry import meta, register
from algorithms.remix import convex_kl
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

    reads = frozenset({F.REF_LOGP})

    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
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
    @dataclass
    class Params:
        lam: float = meta(0.5, min=0.0, max=1.0)
        coef: float = meta(0.001, min=0.0)
        kind: str = meta("k3", choices=KL_KINDS)

    reads = frozenset({F.REF_LOGP, F.OLD_LOGP})

    def per_token(self, logp: torch.Tensor, mb: RolloutBatch,
                  entropy: torch.Tensor | None) -> tuple[torch.Tensor | None, Metrics]:
        base = need(mb.ref_logp, "ref_logp", "regularizer remix_kl")
        prev = need(mb.old_logp, "old_logp", "regularizer remix_kl")
        kl = convex_kl(logp, base, prev, self.params.lam, self.params.kind)
        return self.params.coef * kl, wmean("remix/convex_kl", kl, mb.loss_weights)
