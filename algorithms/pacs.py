"""PACS — "Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR" (Li et al.,
arXiv 2509.02522, eqs. 7-10; code ritzz-ai/PACS `src/pacs/pacs_core_algos.py`).

psi_i   = beta * sum_t m (logp - old_logp)            (reward_method "1"; against pi_OLD as the code does;
          `reference` form: against ref_logp)
logit_i = psi_i - mean_{j != i in group} psi_j        (baseline "rloo"; "grpo": (psi - mean)/(std + 1e-6),
          "none": psi). A group of one has baseline 0.
w_i     = 1, or ("question") sklearn-balanced per group with both labels: G / (2 * #samples with label y_i)
loss    = mean_i w_i * BCEWithLogits(logit_i, y_i),   y_i = 1 if reward > 0.5 else 0.
The RLOO/GRPO baseline and the weights are per group: micro-batches must hold whole groups.
"""

from __future__ import annotations

import torch

from algorithms.core import group_sum

PACS_BASELINES = ("rloo", "grpo", "none")
PACS_WEIGHTINGS = ("question", "none", "only_positive", "only_negative")


def pacs_psi(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """(N,) beta * sum_t m (logp - old_logp)."""
    return beta * ((logp - old_logp) * mask.to(logp.dtype)).sum(-1)


def pacs_logits(psi: torch.Tensor, group_ids: torch.Tensor, baseline: str = "rloo") -> torch.Tensor:
    """(N,) psi minus its group baseline."""
    if baseline == "none":
        return psi
    count = group_sum(torch.ones_like(psi), group_ids)
    total = group_sum(psi, group_ids)
    if baseline == "rloo":
        return torch.where(count > 1, psi - (total - psi) / (count - 1).clamp(min=1), psi)
    if baseline == "grpo":
        mean = total / count
        var = group_sum((psi - mean) ** 2, group_ids) / (count - 1).clamp(min=1)
        return (psi - mean) / (var.sqrt() + 1e-6)
    raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(PACS_BASELINES)}")


def pacs_weights(labels: torch.Tensor, group_ids: torch.Tensor, weighting: str = "question") -> torch.Tensor:
    """(N,) per-sample BCE weights (class balance within each group for "question")."""
    y = labels.to(torch.float32)
    if weighting == "none":
        return torch.ones_like(y)
    if weighting == "only_positive":
        return y
    if weighting == "only_negative":
        return 1.0 - y
    if weighting != "question":
        raise ValueError(f"unknown weighting {weighting!r}; allowed: {', '.join(PACS_WEIGHTINGS)}")
    count = group_sum(torch.ones_like(y), group_ids)
    n_pos = group_sum(y, group_ids)
    same = torch.where(y > 0.5, n_pos, count - n_pos)
    both = (n_pos > 0) & (n_pos < count)
    return torch.where(both, count / (2.0 * same), torch.ones_like(y))


def pacs_sequence_terms(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                        group_ids: torch.Tensor, beta: float = 1.0, baseline: str = "rloo",
                        weighting: str = "question") -> tuple[torch.Tensor, torch.Tensor]:
    """((N,) w_i * BCEWithLogits(logit_i, y_i), (N,) logit_i)."""
    logit = pacs_logits(pacs_psi(logp, old_logp, mask, beta), group_ids, baseline)
    y = labels.to(logit.dtype)
    bce = torch.nn.functional.softplus(logit) - y * logit
    return pacs_weights(labels, group_ids, weighting).to(logit.dtype) * bce, logit


def pacs_sequence_losses(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                         group_ids: torch.Tensor, beta: float = 1.0, baseline: str = "rloo",
                         weighting: str = "question") -> torch.Tensor:
    """(N,) w_i * BCEWithLogits(logit_i, y_i)."""
    return pacs_sequence_terms(logp, old_logp, mask, labels, group_ids, beta, baseline, weighting)[0]


def pacs_loss(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
              group_ids: torch.Tensor, beta: float = 1.0, baseline: str = "rloo",
              weighting: str = "question") -> torch.Tensor:
    """Scalar mean_i w_i * BCEWithLogits(logit_i, y_i)."""
    return pacs_sequence_losses(logp, old_logp, mask, labels, group_ids, beta, baseline, weighting).mean()
