"""PSR / NSR / W-REINFORCE sample advantages — "The Surprising Effectiveness of Negative Reinforcement in
LLM Reasoning" (Zhu et al., arXiv 2506.01347, eqs. 3-5; code TianHongZXY/RLVR-Decomposed
`compute_psr_nsr_outcome_advantage`).

Rewards are {0,1}; a sample counts as correct when reward > 0.5.
- psr: A = +1 on correct samples, the others are dropped (keep = correct);
- nsr: A = -1 on incorrect samples, the others are dropped;
- w-reinforce: A = lam on correct, -1 on incorrect, all kept (lam = 0.1 recommended).
No group baseline.
"""

from __future__ import annotations

import torch

NSR_MODES = ("psr", "nsr", "w-reinforce")


def sample_advantages(rewards: torch.Tensor, mode: str, lam: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages (N,), keep (N,) bool) for mode in NSR_MODES; dropped samples get advantage 0."""
    correct = rewards > 0.5
    one = torch.ones_like(rewards, dtype=torch.float32)
    if mode == "psr":
        return torch.where(correct, one, 0 * one), correct
    if mode == "nsr":
        return torch.where(correct, 0 * one, -one), ~correct
    if mode == "w-reinforce":
        return torch.where(correct, lam * one, -one), torch.ones_like(correct)
    raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(NSR_MODES)}")
