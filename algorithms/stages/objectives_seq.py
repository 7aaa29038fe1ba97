"""Objectives that are not a per-token fixed/dynamic clip of exp(logp - old_logp).

- gspo: sequence-level ratio, GSPO-token form (arXiv 2507.18071 eq. 13).
- gtpo: unclipped policy gradient -A * ratio (ratio = exp(logp - sg(logp)) as in the official code, value 1),
  the conflict weights come from the gtpo token selector (arXiv 2508.03772).
- pacs: per-sequence BCE of the implicit critic (arXiv 2509.02522 eq. 10); needs whole groups per micro-batch.
  Each row's share of the normaliser is the row sum of its effective weights (1/N with seq-mean-token-mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import clip_fractions, clipped_surrogate
from algorithms.gspo import gspo_token_old_logp, sequence_ratio
from algorithms.pacs import PACS_BASELINES, PACS_WEIGHTINGS, pacs_sequence_terms
from algorithms.registry import meta, register
from algorithms.stages.advantages import LABELS
from algorithms.stages.base import Metrics, Objective, need, wmean


@register("objective", "gspo")
class GSPOClip(Objective):
    reads = frozenset({F.OLD_LOGP, F.ADVANTAGES, F.RESPONSE_MASK})

    @dataclass
    class Params:
        low: float = meta(1.0 - 3e-4, gt=0.0, max=1.0)
        high: float = meta(1.0 + 4e-4, min=1.0)

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        old = need(mb.old_logp, "old_logp", "objective gspo")
        eff_old = gspo_token_old_logp(logp, old, mb.response_mask)
        per_tok = clipped_surrogate(logp, eff_old, mb.advantages, self.params.low, self.params.high)
        s = sequence_ratio(logp.detach(), old, mb.response_mask).unsqueeze(-1).expand_as(per_tok)
        metrics = wmean("actor/pg_loss", per_tok, w)
        metrics.update(wmean("actor/ppo_kl", old - logp, w))
        for key, ind in clip_fractions(s, mb.advantages, self.params.low, self.params.high).items():
            metrics.update(wmean(f"actor/{key}", ind, w))
        metrics.update(wmean("gspo/seq_ratio", s, w))
        return (per_tok * w).sum(), metrics


@register("objective", "gtpo")
class GTPOObjective(Objective):
    reads = frozenset({F.ADVANTAGES})

    @dataclass
    class Params:
        ratio: str = meta("detached", choices=("detached", "old"))

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        if self.params.ratio == "old":
            ref = need(mb.old_logp, "old_logp", "objective gtpo")
        else:
            ref = logp.detach()
        ratio = torch.exp((logp - ref).clamp(-20.0, 20.0))
        per_tok = -mb.advantages * ratio
        metrics = wmean("actor/pg_loss", per_tok, w)
        if mb.old_logp is not None:
            metrics.update(wmean("actor/ppo_kl", mb.old_logp - logp, w))
        return (per_tok * w).sum(), metrics


@register("objective", "pacs")
class PACSObjective(Objective):
    group_aligned = True

    @dataclass
    class Params:
        beta: float = meta(1.0, gt=0.0)
        baseline: str = meta("rloo", choices=PACS_BASELINES)
        weighting: str = meta("question", choices=PACS_WEIGHTINGS)
        psi_against: str = meta("old", choices=("old", "ref"))

    @property
    def reads(self) -> frozenset[F]:
        base = F.OLD_LOGP if self.params.psi_against == "old" else F.REF_LOGP
        return frozenset({base, LABELS, F.GROUP_IDS, F.RESPONSE_MASK})

    def loss(self, logp: torch.Tensor, mb: RolloutBatch, w: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        p = self.params
        base = mb.old_logp if p.psi_against == "old" else mb.ref_logp
        base = need(base, f"{p.psi_against}_logp", "objective pacs")
        labels = need(mb.get(LABELS), "labels (advantage 'pacs')", "objective pacs").to(logp.dtype)
        row_w = w.sum(-1)
        # zero-weight rows (trainer padding copies, empty responses) stay out of every group's statistics
        gid = torch.where(row_w > 0, mb.group_ids, -1 - torch.arange(len(mb), device=row_w.device))
        seq_loss, logit = pacs_sequence_terms(logp, base, mb.response_mask, labels, gid, p.beta, p.baseline,
                                              p.weighting)
        metrics = wmean("actor/pg_loss", seq_loss, row_w)
        metrics.update(wmean("pacs/critic_acc", ((logit > 0).to(labels.dtype) == labels).float(), row_w))
        metrics.update(wmean("pacs/logit_mean", logit, row_w))
        return (seq_loss * row_w).sum(), metrics
