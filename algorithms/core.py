"""Shared loss math: masked means, aggregation (global loss normalisation), KL estimators, the PPO clip.

Sources (see /work/shared/ALGORITHMS.md §1):
- aggregation modes follow verl `core_algos.agg_loss` (token-mean = DAPO eq. 8 normaliser 1/sum_i|o_i|;
  seq-mean-token-mean = GRPO, DeepSeekMath eq. 3; seq-mean-token-sum; seq-mean-token-sum-norm = Dr.GRPO,
  arXiv 2503.20783 eq. 2 with a constant length budget) plus group-token-mean (DCPO "OTM", arXiv 2509.02333 §4.3).
- KL estimators k1/k2/k3 (Schulman, "Approximating KL divergence"; k3 = verl "low_var_kl", clamped as verl does).
- clipped surrogate: PPO (Schulman et al. 2017, eq. 7) with ratio bounds (low, high) and dual clip
  (Ye et al. 2019, "Mastering Complex Control in MOBA Games", eq. 5).
- truncated importance sampling (TIS) between the learner's pi_old and the rollout engine's sampling
  distribution: w = min(pi_old / pi_engine, C) per token (Yao et al. 2025, "Your Efficient RL Framework
  Secretly Brings You Off-Policy RL Training", the TIS-corrected policy gradient; C = 2 there).

Global normalisation: every mode is a per-token weight tensor computed on the WHOLE update batch
(`aggregation_weights`), so `aggregate(l, m, mode) == (l * aggregation_weights(m, mode)).sum()` and any
split of the rows into micro-batches / ranks sums back to the same loss. Sequence counts N only count
rows with at least one response token (an empty response contributes nothing and is not counted).
"""

from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
             "group-token-mean")
KL_KINDS = ("k1", "k2", "k3")


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """sum(x*mask)/(sum(mask)+1e-8) (verl `masked_mean`), over everything or along `dim`."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / (m.sum() + 1e-8)
    return (x * m).sum(dim) / (m.sum(dim) + 1e-8)


def group_inverse(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group index per row (0..G-1, ordered by group id) and the number of groups."""
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    return inv, int(uniq.numel())


def group_sum(x: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """For each row, the sum of `x` (N,) over the rows of its group."""
    inv, g = group_inverse(group_ids)
    sums = torch.zeros(g, dtype=x.dtype, device=x.device).index_add_(0, inv, x)
    return sums[inv]


def aggregation_weights(mask: torch.Tensor, mode: str, group_ids: torch.Tensor | None = None,
                        length_budget: int | float | None = None) -> torch.Tensor:
    """(N,T) weights w with aggregate(loss, mask, mode) == (loss * w).sum(); zero where mask is 0."""
    m = mask.to(torch.float32) if not mask.is_floating_point() else mask
    row_tok = m.sum(-1)
    n_seq = (row_tok > 0).sum().clamp(min=1).to(m.dtype)
    if mode == "token-mean":
        return m / m.sum().clamp(min=1e-8)
    if mode == "seq-mean-token-mean":
        return m / row_tok.clamp(min=1e-8).unsqueeze(-1) / n_seq
    if mode == "seq-mean-token-sum":
        return m / n_seq
    if mode == "seq-mean-token-sum-norm":
        budget = float(length_budget) if length_budget else float(m.shape[-1])
        return m / (n_seq * budget)
    if mode == "group-token-mean":
        if group_ids is None:
            raise ValueError("aggregation mode 'group-token-mean' needs group_ids")
        grp_tok = group_sum(row_tok, group_ids)
        inv, g = group_inverse(group_ids)
        has_tok = torch.zeros(g, dtype=m.dtype, device=m.device).index_add_(0, inv, row_tok) > 0
        n_grp = has_tok.sum().clamp(min=1).to(m.dtype)
        return m / grp_tok.clamp(min=1e-8).unsqueeze(-1) / n_grp
    raise ValueError(f"unknown aggregation mode {mode!r}; allowed: {', '.join(AGG_MODES)}")


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str, group_ids: torch.Tensor | None = None,
              length_budget: int | float | None = None) -> torch.Tensor:
    """Scalar loss of a (N,T) per-token loss under one of AGG_MODES (see module docstring)."""
    w = aggregation_weights(mask, mode, group_ids, length_budget).to(loss.dtype)
    return (loss * w).sum()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate: k1 = logp-ref, k2 = (logp-ref)^2/2,
    k3 = exp(ref-logp) - (ref-logp) - 1 with the log-ratio clamped to +-20 and k3 to [-10, 10] (verl)."""
    diff = logp - ref_logp
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff.square()
    if kind == "k3":
        d = (-diff).clamp(-20.0, 20.0)
        return (torch.exp(d) - d - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"unknown KL kind {kind!r}; allowed: {', '.join(KL_KINDS)}")


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      low: float | torch.Tensor, high: float | torch.Tensor,
                      dual_clip: float | None = None) -> torch.Tensor:
    """Per-token PPO loss max(-A r, -A clip(r, low, high)); with dual clip c, min(that, -A c) where A<0.

    r = exp(clamp(logp - old_logp, -20, 20)); low/high are ratio bounds (floats or tensors broadcastable
    to (N,T)), e.g. 0.8/1.28 for DAPO clip-higher."""
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    lo = torch.as_tensor(low, dtype=ratio.dtype, device=ratio.device)
    hi = torch.as_tensor(high, dtype=ratio.dtype, device=ratio.device)
    clipped = torch.minimum(torch.maximum(ratio, lo), hi)
    loss = torch.maximum(-advantages * ratio, -advantages * clipped)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * dual_clip), loss)
    return loss


def clip_fractions(ratio: torch.Tensor, advantages: torch.Tensor, low: float | torch.Tensor,
                   high: float | torch.Tensor, dual_clip: float | None = None) -> dict[str, torch.Tensor]:
    """Float 0/1 indicators (N,T) of tokens whose gradient the clip removed: high side (A>0, r>high),
    low side (A<0, r<low) and dual clip (A<0, r>c)."""
    out = {"clipfrac_high": ((advantages > 0) & (ratio > high)).float(),
           "clipfrac_low": ((advantages < 0) & (ratio < low)).float()}
    if dual_clip is not None:
        out["clipfrac_dual"] = ((advantages < 0) & (ratio > dual_clip)).float()
    return out


def truncated_is_weights(old_logp: torch.Tensor, behaviour_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-token TIS weights min(exp(old_logp - behaviour_logp), cap), detached (no gradient flows).

    `old_logp` is the learner's pi_old, `behaviour_logp` the log-prob the rollout engine sampled with
    (vLLM, a bf16 engine...); the weight corrects the policy gradient for their mismatch."""
    return torch.exp((old_logp - behaviour_logp).clamp(-20.0, 20.0)).clamp(max=cap).detach()
