"""ReMix — "Squeeze the Soaked Sponge: Efficient Off-policy Reinforcement Finetuning for LLM" (Liang et al.,
arXiv 2507.06892; ALGORITHMS.md §9). The released repository has evaluation code only; the details below
come from the abstract and from paper notes (not checked against the PDF), so every knob is configurable.

- Mix-policy proximal policy gradient: each update batch mixes fresh samples of pi_k with samples replayed
  from the last N policies pi_{k-i} (the runtime's `replay` schedule: fraction 0.4, N = 2, UTD m = 2). The
  ratio of a sample is taken against its behaviour policy, r = pi_theta / pi_{k-i}, and the clip window is
  centred on pi_k / pi_{k-i}: clip(r, c - eps, c + eps) with c = pi_k / pi_{k-i} (`centred_clip_bounds`;
  i = 0 gives plain PPO).
- KL-Convex: lambda * KL(pi || pi_base) + (1 - lambda) * KL(pi || pi_{k-1}) with the precedent policy the one
  before this step's update (its log-probs come from the learners' pass, not from the engine), and
  lambda(t) = max(1 - 0.1 * ceil(max(t - 50, 0) / 10), 0.5) (`convex_lambda`).
- Policy reincarnation at step T: the base (reference) becomes the current policy, replay stops, training
  goes on on-policy with the KL anchored to the new base (`reincarnation_plan`).
"""

from __future__ import annotations

import math

import torch

from algorithms.core import kl_penalty


def convex_kl(logp: torch.Tensor, base_logp: torch.Tensor, prev_logp: torch.Tensor, lam: float,
              kind: str = "k3") -> torch.Tensor:
    """(N,T) lam * KL(pi||base) + (1-lam) * KL(pi||prev) with the `kind` estimator of `kl_penalty`."""
    return lam * kl_penalty(logp, base_logp, kind) + (1.0 - lam) * kl_penalty(logp, prev_logp, kind)


def convex_lambda(step: int, start: float = 1.0, end: float = 0.5, decay_start: int = 50, every: int = 10,
                  decrement: float = 0.1) -> float:
    """lambda(t) = max(start - decrement * ceil(max(t - decay_start, 0) / every), end)."""
    return max(start - decrement * math.ceil(max(step - decay_start, 0) / every), end)


def centred_clip_bounds(prox_logp: torch.Tensor, behaviour_logp: torch.Tensor, eps_low: float,
                        eps_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) ratio bounds c - eps_low, c + eps_high with c = pi_k / pi_behaviour per token."""
    c = torch.exp((prox_logp - behaviour_logp).clamp(-20.0, 20.0))
    return c - eps_low, c + eps_high


def reincarnated(step: int, reincarnate_at: int) -> bool:
    """Whether policy reincarnation has happened by `step` (0 = never)."""
    return bool(reincarnate_at) and step >= reincarnate_at
