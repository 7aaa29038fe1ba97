"""DCPO — Dynamic Clipping Policy Optimization (Yang et al., arXiv 2509.02333; code lime-RL/DCPO
`get_clip_low_high`, `compute_dcpo_outcome_advantage`).

Dynamic-adaptive clipping (§4.1): from |(p/q - 1) p| <= eps with q the old token probability,
  r_low(q)  = 0.5 + 0.5 sqrt(max(1 - 4 eps_low / q, 0))
  r_high(q) = min(0.5 + 0.5 sqrt(1 + 4 eps_high / q), max_high)          (code caps at 10)
Smooth advantage standardisation (§4.2): per prompt, cumulative (mean, std, times) over all visits; at the
i-th visit
  cum_mean = (old_mean (i-1) + new_mean) / i
  cum_var  = ((i-1) old_std^2 + new_std^2 + (i-1)/i (new_mean - old_mean)^2) / i
  A_new = (R - new_mean)/new_std (0 if new_std == 0),  A_tot = (R - cum_mean)/cum_std (0 if cum_std == 0)
  SA_new = (i-1)/i A_new + 1/i A_tot,  SA_tot = 1/i A_new + (i-1)/i A_tot
  A = SA_new if |SA_new| < |SA_tot| else SA_tot.
std is unbiased (n-1); a group of one sample has new_std = 0. Paper defaults eps_low 0.16, eps_high 0.2.
"""

from __future__ import annotations

import torch


def dynamic_clip_bounds(old_probs: torch.Tensor, eps_low: float, eps_high: float,
                        max_high: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ratio bounds (low, high) from old token probabilities q (any shape)."""
    q = old_probs.clamp(min=1e-12)
    low = 0.5 + 0.5 * torch.sqrt(torch.clamp(1.0 - 4.0 * eps_low / q, min=0.0))
    high = torch.clamp(0.5 + 0.5 * torch.sqrt(1.0 + 4.0 * eps_high / q), max=max_high)
    return low, high


def _smooth(r: torch.Tensor, stats: tuple[float, float, int] | None) -> tuple[torch.Tensor, tuple[float, float, int]]:
    """Advantages of one group's rewards r (float64) and the updated (mean, std, times) of its prompt."""
    new_mean = float(r.mean())
    new_std = float(r.std()) if r.numel() > 1 else 0.0
    if stats is None:
        i, cum_mean, cum_std = 1, new_mean, new_std
    else:
        old_mean, old_std, t_old = stats
        i = t_old + 1
        cum_mean = (old_mean * t_old + new_mean) / i
        cum_var = (t_old * old_std ** 2 + new_std ** 2 + t_old / i * (new_mean - old_mean) ** 2) / i
        cum_std = cum_var ** 0.5
    a_new = (r - new_mean) / new_std if new_std > 0 else torch.zeros_like(r)
    a_tot = (r - cum_mean) / cum_std if cum_std > 0 else torch.zeros_like(r)
    sa_new = (i - 1) / i * a_new + a_tot / i
    sa_tot = a_new / i + (i - 1) / i * a_tot
    adv = torch.where(sa_new.abs() < sa_tot.abs(), sa_new, sa_tot)
    return adv, (cum_mean, cum_std, i)


class SmoothAdvantage:
    """Stateful DCPO advantage; state = {prompt_key: (mean, std, times)}. Each call is one visit per group."""

    def __init__(self) -> None:
        self.stats: dict[str, tuple[float, float, int]] = {}

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor, prompt_keys: list[str]) -> torch.Tensor:
        """(N,) advantages; updates the per-prompt statistics once per group (groups in id order)."""
        out = torch.zeros(rewards.shape[0], dtype=torch.float64)
        r64 = rewards.to(torch.float64)
        for gid in torch.unique(group_ids).tolist():
            rows = (group_ids == gid).nonzero(as_tuple=True)[0]
            key = prompt_keys[int(rows[0])]
            out[rows], self.stats[key] = _smooth(r64[rows], self.stats.get(key))
        return out.to(rewards.dtype)

    def state_dict(self) -> dict:
        return {"stats": {k: list(v) for k, v in self.stats.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.stats = {k: (float(v[0]), float(v[1]), int(v[2])) for k, v in d.get("stats", {}).items()}
