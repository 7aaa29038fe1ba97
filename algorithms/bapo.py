"""BAPO — Balanced Policy Optimization with Adaptive Clipping (Xi et al., arXiv 2510.18927, §4.2 Eq. 8 and
Algorithm 1; code WooooDyy/BAPO `recipe/bapo/policy_loss.py::compute_policy_loss_bapo`).

Ratio bounds (c_low, c_high) are searched afresh on each update (each mini-batch, over all its rows and
ranks) until the positive part of the policy-gradient contribution is large enough:

- mode "paper" (the preset default): with p_b = pi_rollout(y_t) the behaviour policy's token probability,
      pos = sum_{A>0} p_b |A| min(r, c_high),  neg = sum_{A<0} p_b |A| max(r, c_low)
  (Eq. 8's |sum_{A>0} p_b min(rA, clip(r,0,c_high)A)| and the A<0 part of sum_all |p_b min(rA, clip(r,c_low,
  c_high)A)|), rho = pos / (pos + neg) >= rho0 (`target`, paper 0.4). Search (Algorithm 1): start at
  (a-, a+); while rho < rho0 and c_low + d2 <= b-: raise c_high by d1 while c_high + d1 <= b+, else raise
  c_low by d2. Paper ranges: c_low 0.6 -> 0.9 step 0.02, c_high 1.2 -> 3.0 step 0.05.
- mode "code" (the official code): eff_r = min(r, c_high) if A >= 0 else max(r, c_low);
  pos = sum clamp(eff_r A m, min=0), neg = sum -clamp(eff_r A m, max=0), target on pos/neg (= rho0/(1-rho0);
  yaml 1.0); raise c_low by low_step up to low_max first, then c_high; ranges 0.6 -> 0.8 and 1.2 -> 2.0
  step 0.05.
In both forms raising c_low adds to `neg` (a token with r < c_low counts with c_low), so the c_low phase
cannot raise the positive share; it only moves once c_high is exhausted. We keep both as written.
rltrain decision: the sums run over the whole mini-batch (all ranks), so bounds do not depend on the split.
"""

from __future__ import annotations

import torch

BAPO_MODES = ("code", "paper")


def contribution_ratio(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, c_low: float,
                       c_high: float, mode: str = "code", behaviour_prob: torch.Tensor | None = None) -> float:
    """mode "code": pos/neg (inf when there is no negative part); mode "paper": pos/(pos+neg), each token
    weighted by `behaviour_prob` (N,T) when given (1 when no token carries advantage)."""
    r, a, m = ratio.double(), advantages.double(), mask.double()
    if mode == "code":
        eff = torch.where(a >= 0, torch.clamp(r, max=c_high), torch.clamp(r, min=c_low)) * a * m
        pos, neg = float(eff.clamp(min=0).sum()), float(-eff.clamp(max=0).sum())
        return pos / (neg + 1e-8) if neg > 0 else float("inf")
    if mode != "paper":
        raise ValueError(f"unknown BAPO mode {mode!r}; allowed: {', '.join(BAPO_MODES)}")
    w = m * (behaviour_prob.double() if behaviour_prob is not None else 1.0) * a.abs()
    pos = float((w * torch.clamp(r, max=c_high) * (a > 0)).sum())
    neg = float((w * torch.clamp(r, min=c_low) * (a < 0)).sum())
    return pos / (pos + neg) if pos + neg > 0 else 1.0


def adaptive_bounds(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, target: float,
                    low_start: float, low_max: float, low_step: float, high_start: float, high_max: float,
                    high_step: float, mode: str = "code",
                    behaviour_prob: torch.Tensor | None = None) -> tuple[float, float]:
    """(c_low, c_high) found by the BAPO search of `mode`; ratio, advantages, mask (and behaviour_prob) are (N,T)."""
    c_low, c_high = float(low_start), float(high_start)

    def value() -> float:
        return contribution_ratio(ratio, advantages, mask, c_low, c_high, mode, behaviour_prob)

    eps = 1e-9
    if mode == "paper":
        while value() < target and c_low + low_step <= low_max + eps:
            if c_high + high_step <= high_max + eps:
                c_high += high_step
            else:
                c_low += low_step
        return round(c_low, 10), round(c_high, 10)
    while value() < target and c_low < low_max:
        c_low = min(c_low + low_step, low_max)
    while value() < target and c_high < high_max:
        c_high = min(c_high + high_step, high_max)
    return c_low, c_high
