"""GTPO — "GTPO: Trajectory-Based Policy Optimization in Large Language Models" / "Stabilizing GRPO via
Gradient and Entropy Control" (Simoni et al., arXiv 2508.03772; code winstonsmith1897/GTPO
`gtpo/gtpo_training.py::build_conflict_mask`, `gtpo_compute_loss`). NOT the Tan et al. GTPO (2508.04349).

Conflict tokens: within a group, the token at position t of an active completion (A != 0) conflicts when
that same token id sits at position t in >= 1 positive AND >= 1 negative completion. Only the leading run
(cumprod over t) counts, and the same again on end-aligned sequences (position counted from the end) for
the trailing run. delta = 1 off conflict, w_pos on conflict in a positive completion, 0 on conflict in a
negative one; weights = delta_forward * delta_backward * mask (a positive token in both runs gets w_pos^2).
n_conflict_i = max(1, #conflict tokens of either run), counted in the SAME coordinates (rltrain decision:
the official code ORs the forward mask with the reversed-coordinate backward mask, a bug).
Inactive completions (A == 0) get weights = mask and n_conflict = 1.
Entropy filter (code l.366-372): A' = A - scale*H if H <= threshold else 0 (threshold 0.7 ~ ln 2, scale 0.1),
H = the completion's mean token entropy.
Loss per completion: sum_t(-A' * w * ratio * m) / sum_t m / n_conflict, mean over completions
(the official code sums over completions; that is a learning-rate scale, `reduce="sum"`).
"""

from __future__ import annotations

import torch


def _conflict_raw(ids: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """(G,L) bool: token at (g,t) also appears at t in some positive and in some negative completion."""
    eq = (ids.unsqueeze(1) == ids.unsqueeze(0)) & valid.unsqueeze(1) & valid.unsqueeze(0)  # (G,H,L)
    in_pos = (eq & pos.view(1, -1, 1)).any(1)
    in_neg = (eq & neg.view(1, -1, 1)).any(1)
    return in_pos & in_neg & valid


def _leading_run(raw: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(raw.to(torch.int64), dim=1).bool()


def _reverse_rows(x: torch.Tensor, lengths: torch.Tensor, fill) -> torch.Tensor:
    """Row i reversed within its first lengths[i] entries, left-aligned; `fill` after (an involution)."""
    L = x.shape[1]
    src = lengths.unsqueeze(1) - 1 - torch.arange(L, device=x.device).unsqueeze(0)
    out = x.gather(1, src.clamp(min=0))
    return torch.where(src >= 0, out, torch.full_like(out, fill))


def _group_conflicts(ids, mask, adv, pad_id) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward conflict runs (G,L) of one group's active completions, original coordinates."""
    pos, neg = adv > 0, adv < 0
    valid = (ids != pad_id) & (mask > 0)
    fwd = _leading_run(_conflict_raw(ids, valid, pos, neg)) & valid
    last = torch.where(mask > 0, torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) + 1, 0).max(1).values
    ids_r = _reverse_rows(ids, last, pad_id)
    valid_r = _reverse_rows(valid, last, False)
    bwd_r = _leading_run(_conflict_raw(ids_r, valid_r, pos, neg)) & valid_r
    bwd = _reverse_rows(bwd_r, last, False)
    return fwd, bwd


def conflict_weights(token_ids: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                     group_ids: torch.Tensor, pad_id: int, w_pos: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights (N,T), n_conflict (N,) long >= 1) of GTPO; advantages (N,) one per completion."""
    N, T = token_ids.shape
    weights = (mask > 0).to(torch.float32).clone()
    n_conflict = torch.ones(N, dtype=torch.long, device=token_ids.device)
    for gid in torch.unique(group_ids).tolist():
        rows = ((group_ids == gid) & (advantages != 0)).nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            continue
        adv, m = advantages[rows], mask[rows]
        fwd, bwd = _group_conflicts(token_ids[rows], m, adv, pad_id)
        on_conflict = torch.where(adv > 0, w_pos, 0.0).unsqueeze(1)
        delta = torch.where(fwd, on_conflict, 1.0) * torch.where(bwd, on_conflict, 1.0)
        weights[rows] = delta * (m > 0)
        n_conflict[rows] = ((fwd | bwd) & (m > 0)).sum(1).clamp(min=1)
    return weights, n_conflict


def entropy_filtered_advantages(advantages: torch.Tensor, seq_entropy: torch.Tensor, threshold: float = 0.7,
                                scale: float = 0.1) -> torch.Tensor:
    """(N,) A - scale*H where H <= threshold, else 0 (high-entropy completions are dropped)."""
    return torch.where(seq_entropy <= threshold, advantages - scale * seq_entropy, torch.zeros_like(advantages))
