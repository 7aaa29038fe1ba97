"""BAPO — Balanced Policy Optimization with Adaptive Clipping (Xi et al., arXiv 2510.18927, Alg. 1; code
WooooDyy/BAPO `recipe/bapo/policy_loss.py::compute_policy_loss_bapo`).

Ratio bounds (c_low, c_high) are searched from (low_start, high_start) on each mini-batch until the
positive share of the policy-gradient contribution reaches `target` (given as pos/neg = rho0/(1-rho0)):
first raise c_low by low_step up to low_max, then c_high by high_step up to high_max, stopping as soon as
pos/neg >= target.
- mode "code" (default, the official code): eff_r = min(r, c_high) if A >= 0 else max(r, c_low);
  pos = sum clamp(eff_r A m, min=0), neg = sum -clamp(eff_r A m, max=0). (In this metric raising c_low
  lowers pos/neg, so the c_low phase never helps — a quirk of the code, kept for fidelity.)
- mode "paper" (our reading of the paper, UNVERIFIED): only tokens that still carry gradient count:
  pos = sum_{A>0, r<=c_high} |r A|, neg = sum_{A<0, r>=c_low} |r A|.
rltrain decision: the sums run over the whole mini-batch (all ranks), so bounds do not depend on the split.
"""

from __future__ import annotations

import torch

BAPO_MODES = ("code", "paper")


def contribution_ratio(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, c_low: float,
                       c_high: float, mode: str = "code") -> float:
    """pos/neg contribution ratio under bounds (c_low, c_high); inf when there is no negative part."""
    r, a, m = ratio.double(), advantages.double(), mask.double()
    if mode == "code":
        eff = torch.where(a >= 0, torch.clamp(r, max=c_high), torch.clamp(r, min=c_low)) * a * m
        pos, neg = float(eff.clamp(min=0).sum()), float(-eff.clamp(max=0).sum())
    elif mode == "paper":
        contrib = (r * a).abs() * m
        pos = float((contrib * ((a > 0) & (r <= c_high))).sum())
        neg = float((contrib * ((a < 0) & (r >= c_low))).sum())
    else:
        raise ValueError(f"unknown BAPO mode {mode!r}; allowed: {', '.join(BAPO_MODES)}")
    return pos / (neg + 1e-8) if neg > 0 else float("inf")


def adaptive_bounds(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, target: float,
                    low_start: float, low_max: float, low_step: float, high_start: float, high_max: float,
                    high_step: float, mode: str = "code") -> tuple[float, float]:
    """(c_low, c_high) found by the BAPO search; ratio, advantages, mask are (N,T)."""
    c_low, c_high = float(low_start), float(high_start)
    value = contribution_ratio(ratio, advantages, mask, c_low, c_high, mode)
    while value < target and c_low < low_max:
        c_low = min(c_low + low_step, low_max)
        value = contribution_ratio(ratio, advantages, mask, c_low, c_high, mode)
    while value < target and c_high < high_max:
        c_high = min(c_high + high_step, high_max)
        value = contribution_ratio(ratio, advantages, mask, c_low, c_high, mode)
    return c_low, c_high
