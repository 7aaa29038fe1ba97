"""GSPO — Group Sequence Policy Optimization (Zheng et al., arXiv 2507.18071, eqs. 5-7 and GSPO-token eq. 13).

Sequence importance ratio s_i = exp( (1/|o_i|) sum_t (logp - old_logp) ); the token form
log w_{i,t} = logp_{i,t} - sg(logp_{i,t}) + sg(log s_i) has value s_i and the GSPO gradient when the
advantage is constant over the sequence. Clip bounds are tiny (paper: eps_low 3e-4, eps_high 4e-4).
"""

from __future__ import annotations

import torch


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) length-normalised log ratio sum_t m (logp - old_logp) / max(sum_t m, 1)."""
    m = mask.to(logp.dtype)
    return ((logp - old_logp) * m).sum(-1) / m.sum(-1).clamp(min=1.0)


def sequence_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) GSPO sequence ratio s_i (differentiable w.r.t. logp); 1 for a row with no tokens."""
    return torch.exp(sequence_log_ratio(logp, old_logp, mask).clamp(-20.0, 20.0))


def gspo_token_old_logp(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,T) detached "old" log-probs that make exp(logp - result) == the GSPO-token weight w_{i,t}:
    result = sg(logp) - sg(log s_i)."""
    log_s = sequence_log_ratio(logp, old_logp, mask).clamp(-20.0, 20.0)
    return (logp - log_s.unsqueeze(-1)).detach()
