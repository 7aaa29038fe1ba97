"""Policy-gradient weights under a noisy verifier (Cai et al., "RL with Verifiable yet Noisy Rewards under
Imperfect Verifiers", arXiv 2510.00915; ALGORITHMS.md §10).

With R~ the verifier's binary reward and rho1 its false-negative rate, the forward correction replaces the
score-function weight by w(R~ = 1) = rho1, w(R~ = 0) = rho1 - 1 (no baseline): E[w | R = 1] = 0 and
E[w | R = 0] = -(1 - rho0 - rho1), so E[sum w grad log pi] is (1 - rho0 - rho1) times the clean policy
gradient whatever the noise. The backward correction R_hat = (R~ - rho0) / (1 - rho0 - rho1) (in `rewards`)
is an affine map of the reward: a group baseline (GRPO, Dr.GRPO, RLOO) removes it again, so it acts only
with a baseline-free estimator such as `reinforce_advantages`.
"""

from __future__ import annotations

import torch


def forward_corrected_advantages(rewards: torch.Tensor, fn_rate: float, threshold: float = 0.5) -> torch.Tensor:
    """(N,) rho1 where the reward is >= threshold, rho1 - 1 elsewhere."""
    if not 0.0 <= fn_rate < 1.0:
        raise ValueError(f"fn_rate must be in [0, 1), got {fn_rate}")
    return torch.where(rewards >= threshold, torch.full_like(rewards, fn_rate), torch.full_like(rewards, fn_rate - 1.0))


def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(N,) the reward itself: REINFORCE without a baseline."""
    return rewards.clone()
