"""Preference losses on per-sequence log-probabilities (pure torch; no model, no runtime).

Every input is (N,): one entry per preference pair. `logp_*` is the policy's log-probability of the
chosen / rejected completion given the prompt, summed over the completion's tokens; `len_*` the number
of those tokens; `ref_*` the same sum under the frozen reference (unused by SimPO).

- `sigmoid` (DPO; Rafailov et al. 2023, arXiv 2305.18290, eq. 7):
  -log sigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r)))
- `ipo` (Azar et al. 2023, arXiv 2310.12036, eq. 17, tau = beta): (h - 1 / (2 beta))^2 with
  h = (logp_c - ref_c) / len_c - (logp_r - ref_r) / len_r. The paper writes h on sequence log-ratios;
  TRL (1.16, `DPOTrainer`, loss_type="ipo") divides each side's log-ratio by its completion length,
  which its authors confirmed is the form behind the paper's results and which keeps 1/(2 beta) on the
  same scale whatever the lengths. rltrain does the same by default; `token_mean=False` gives eq. 17 on
  the summed log-ratios.
- `simpo` (Meng et al. 2024, arXiv 2405.14734, eq. 6; reference-free):
  -log sigmoid(beta * logp_c / len_c - beta * logp_r / len_r - gamma)

The implicit rewards (the metrics TRL logs as rewards/chosen, rewards/rejected): beta * (logp - ref)
on summed log-ratios for `sigmoid` and `ipo` (TRL logs those for IPO as well), beta * logp / len (SimPO's
reward, its eq. 4) for `simpo`. accuracies = chosen reward > rejected reward (a tie is not a win);
margins = chosen - rejected; logps/* are the policy's summed log-probs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("sigmoid", "ipo", "simpo")
NEEDS_REFERENCE = {"sigmoid": True, "ipo": True, "simpo": False}
METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
           "logps/rejected")


@dataclass
class PreferenceTerms:
    losses: torch.Tensor            # (N,) each pair's loss (differentiable)
    chosen_rewards: torch.Tensor    # (N,) implicit rewards (detached)
    rejected_rewards: torch.Tensor  # (N,)


def preference_loss(logp_c: torch.Tensor, logp_r: torch.Tensor, len_c: torch.Tensor, len_r: torch.Tensor,
                    ref_c: torch.Tensor | None = None, ref_r: torch.Tensor | None = None, *, loss: str = "sigmoid",
                    beta: float = 0.1, gamma: float = 0.5, token_mean: bool = True) -> PreferenceTerms:
    """Per-pair losses and implicit rewards of `loss` (module docstring). `token_mean` is IPO's
    length normalisation; `gamma` is SimPO's target margin."""
    if loss not in LOSSES:
        raise ValueError(f"unknown preference loss {loss!r}; one of {', '.join(LOSSES)}")
    len_c, len_r = len_c.to(logp_c.dtype).clamp(min=1), len_r.to(logp_r.dtype).clamp(min=1)
    if loss == "simpo":
        r_c, r_r = beta * logp_c / len_c, beta * logp_r / len_r
        return PreferenceTerms(-F.logsigmoid(r_c - r_r - gamma), r_c.detach(), r_r.detach())
    if ref_c is None or ref_r is None:
        raise ValueError(f"the {loss!r} loss needs the reference's log-probs")
    ratio_c, ratio_r = logp_c - ref_c, logp_r - ref_r
    if loss == "sigmoid":
        losses = -F.logsigmoid(beta * (ratio_c - ratio_r))
    else:
        h = ratio_c / len_c - ratio_r / len_r if token_mean else ratio_c - ratio_r
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    return PreferenceTerms(losses, beta * ratio_c.detach(), beta * ratio_r.detach())


def preference_metrics(terms: PreferenceTerms, logp_c: torch.Tensor, logp_r: torch.Tensor,
                       weights: torch.Tensor) -> dict[str, tuple[float, float]]:
    """TRL's names (METRICS) as (sum of value x weight, sum of weight), so micro-batches and ranks
    reduce to the exact weighted mean (algorithms.reduce_metrics); pairs of weight 0 count for nothing."""
    w = weights.detach().double()
    values = {"loss": terms.losses, "rewards/chosen": terms.chosen_rewards, "rewards/rejected": terms.rejected_rewards,
              "rewards/accuracies": (terms.chosen_rewards > terms.rejected_rewards).double(),
              "rewards/margins": terms.chosen_rewards - terms.rejected_rewards,
              "logps/chosen": logp_c, "logps/rejected": logp_r}
    total = float(w.sum())
    return {k: (float((v.detach().double() * w).sum()), total) for k, v in values.items()}
