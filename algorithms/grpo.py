"""Group-relative outcome advantages: GRPO, Dr.GRPO, RLOO, and DAPO's soft overlong shaping.

- GRPO (DeepSeekMath, arXiv 2402.03300, §4.1.2): A_i = (R_i - mean_g R) / (std_g R + eps), std unbiased,
  as in verl `compute_grpo_outcome_advantage` (a group of one sample has mean 0, std 1).
- Dr.GRPO (arXiv 2503.20783, §3.2): no std division (`scale="none"`).
- RLOO (Ahmadian et al. 2024, arXiv 2402.14740, eq. 6): A_i = R_i - mean_{j != i} R_j (0 for a group of one).
- DAPO overlong reward shaping (arXiv 2503.14476, eq. 13): 0 up to max_len - buffer, then linearly down to
  -factor at max_len (verl `recipe/dapo` reward manager; no cap beyond max_len).
"""

from __future__ import annotations

import torch

from algorithms.core import group_inverse, group_sum


def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, scale: str = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """(N,) group-normalised advantages; scale "group" divides by the unbiased group std, "none" = Dr.GRPO."""
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none', got {scale!r}")
    r = rewards.to(torch.float64)
    inv, g = group_inverse(group_ids)
    count = torch.zeros(g, dtype=r.dtype).index_add_(0, inv, torch.ones_like(r))
    mean = torch.zeros(g, dtype=r.dtype).index_add_(0, inv, r) / count
    sq = torch.zeros(g, dtype=r.dtype).index_add_(0, inv, (r - mean[inv]) ** 2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    single = count[inv] == 1
    mean_i = torch.where(single, torch.zeros_like(r), mean[inv])
    std_i = torch.where(single, torch.ones_like(r), std[inv])
    adv = r - mean_i if scale == "none" else (r - mean_i) / (std_i + eps)
    return adv.to(rewards.dtype)


def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """(N,) leave-one-out baseline advantages R_i - (sum_g R - R_i)/(G-1); 0 for a group of one."""
    r = rewards.to(torch.float64)
    count = group_sum(torch.ones_like(r), group_ids)
    total = group_sum(r, group_ids)
    adv = torch.where(count > 1, r - (total - r) / (count - 1).clamp(min=1), torch.zeros_like(r))
    return adv.to(rewards.dtype)


#: shaped rewards are snapped to this grid: the ramp of a fractional buffer rounds (8 - 6.4 is not 1.6 in
#: floating point), and a group whose shaped rewards should be equal but differ by that rounding would
#: get advantages of (rounding / eps), several hundredths with float32 and eps 1e-6
SHAPED_REWARD_GRID = 1e-9


def shaped_rewards(rewards: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """(N,) float64 rewards + overlong penalty on a 1e-9 grid: equal values stay exactly equal."""
    total = rewards.to(torch.float64) + penalty.to(torch.float64)
    return torch.round(total / SHAPED_REWARD_GRID) * SHAPED_REWARD_GRID


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: float, factor: float = 1.0) -> torch.Tensor:
    """(N,) DAPO soft overlong punishment: min(-(L - (max_len - buffer)) / buffer * factor, 0), in float64
    (a fractional buffer's ramp rounds; see `shaped_rewards`)."""
    if buffer <= 0:
        return torch.zeros_like(lengths, dtype=torch.float64)
    exceed = lengths.to(torch.float64) - (max_len - buffer)
    return torch.clamp(-exceed / buffer * factor, max=0.0)
