"""Token selectors: per-token weights on top of the aggregation weights.

- none.
- forking (Wang et al., arXiv 2506.01939): top `top_ratio` old-policy entropies over the whole batch;
  normaliser "selected" (official code: aggregate over selected tokens only) or "all" (paper eq. 6).
- gtpo (Simoni et al., arXiv 2508.03772): conflict weights / n_conflict per completion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.forking import high_entropy_mask
from algorithms.gtpo import conflict_weights
from algorithms.registry import meta, register
from algorithms.stages.advantages import SEQ_ADVANTAGES
from algorithms.stages.base import TokenSelector, need


@register("token_selector", "none")
class NoSelection(TokenSelector):
    @dataclass
    class Params:
        pass


@register("token_selector", "forking")
class ForkingTokens(TokenSelector):
    @dataclass
    class Params:
        top_ratio: float = meta(0.2, gt=0.0, max=1.0)
        normaliser: str = meta("selected", choices=("selected", "all"))

    reads, writes = frozenset({F.ENTROPY, F.RESPONSE_MASK}), frozenset({F.TOKEN_WEIGHTS})

    def select(self, batch: RolloutBatch) -> tuple[torch.Tensor | None, bool, dict[str, float]]:
        ent = need(batch.entropy, "entropy", "token_selector forking")
        sel = high_entropy_mask(ent, batch.response_mask, self.params.top_ratio)
        n_tok = float((batch.response_mask > 0).sum())
        metrics = {"forking/selected_frac": float(sel.sum()) / max(n_tok, 1.0)}
        if sel.any():
            metrics["forking/entropy_threshold"] = float(ent[sel].min())
        return sel.to(torch.float32), self.params.normaliser == "selected", metrics


@register("token_selector", "gtpo")
class GTPOConflicts(TokenSelector):
    """Reads the per-completion `seq_advantages` when an earlier stage wrote them (GTPO's advantage; an
    optional read, so not in `reads`), else the row sum of `advantages` (its sign is what matters)."""

    reads = frozenset({F.ADVANTAGES, F.RESPONSE_IDS, F.RESPONSE_MASK, F.GROUP_IDS})
    writes = frozenset({F.TOKEN_WEIGHTS})

    @dataclass
    class Params:
        w_pos: float = meta(2.0, min=0.0)
        reduce: str = meta("mean", choices=("mean", "sum"))

    def select(self, batch: RolloutBatch) -> tuple[torch.Tensor | None, bool, dict[str, float]]:
        raw = batch.get(SEQ_ADVANTAGES)
        if raw is None:
            raw = need(batch.advantages, "advantages", "token_selector gtpo").sum(-1)
        w, n_conf = conflict_weights(batch.response_ids, raw, batch.response_mask, batch.group_ids,
                                     batch.pad_id, self.params.w_pos)
        weights = w / n_conf.unsqueeze(-1).to(w.dtype)
        if self.params.reduce == "sum":
            weights = weights * float((batch.response_mask.sum(-1) > 0).sum())
        m = batch.response_mask > 0
        active = (raw != 0).unsqueeze(-1) & m
        conflict_frac = float(((w != 1) & active).sum()) / max(float(active.sum()), 1.0)
        return weights, False, {"gtpo/conflict_frac": conflict_frac}
