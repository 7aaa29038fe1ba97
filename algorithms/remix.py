"""ReMix — "Squeeze the Soaked Sponge: Efficient Off-policy Reinforcement Finetuning for LLM" (Liang et al.,
arXiv 2507.06892).

Verified from the abstract: (1) mix-policy proximal policy gradient over data from the current and past
policies with a higher update-to-data (UTD) ratio; (2) a KL-Convex constraint mixing KL to the base model
and KL to the precedent model; (3) policy reincarnation: mid-training the base model is replaced by the
current policy and training restarts on-policy.
OUR READING (UNVERIFIED; the paper body and training code were not available, see ALGORITHMS.md §9), every
knob configurable:
- the ratio of a replayed sample is taken against the log-probs of the policy that generated it
  (`batch.sampling_logp`), on-policy samples against `old_logp`;
- convex KL = lam * KL(pi || base) + (1 - lam) * KL(pi || precedent), per token, any k1/k2/k3 estimator;
- the schedule: replay fraction p and UTD m until step `reincarnate_at`, then p = 0, m = 1 (on-policy) and
  the base model becomes the current policy (the trainer swaps the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import kl_penalty


def convex_kl(logp: torch.Tensor, base_logp: torch.Tensor, prev_logp: torch.Tensor, lam: float,
              kind: str = "k3") -> torch.Tensor:
    """(N,T) lam * KL(pi||base) + (1-lam) * KL(pi||prev) with the `kind` estimator of `kl_penalty`."""
    return lam * kl_penalty(logp, base_logp, kind) + (1.0 - lam) * kl_penalty(logp, prev_logp, kind)


@dataclass
class RemixSchedule:
    """Off-policy schedule with policy reincarnation; state = the step reincarnation happened at."""

    replay_fraction: float = 0.5
    utd: int = 2
    buffer_depth: int = 2
    reincarnate_at: int = 0           # 0 = never
    reincarnated_at: int | None = None

    def observe(self, step: int) -> bool:
        """Record the trainer step; True exactly once, at the step where reincarnation happens."""
        if self.reincarnate_at and self.reincarnated_at is None and step >= self.reincarnate_at:
            self.reincarnated_at = step
            return True
        return False

    @property
    def reincarnated(self) -> bool:
        return self.reincarnated_at is not None

    def at(self, step: int) -> dict[str, float]:
        """What the data layer should do at `step` (replay fraction, UTD, buffer depth, reincarnated flag)."""
        on_policy = self.reincarnated or bool(self.reincarnate_at and step >= self.reincarnate_at)
        return {"replay_fraction": 0.0 if on_policy else self.replay_fraction,
                "utd": 1.0 if on_policy else float(self.utd),
                "buffer_depth": float(self.buffer_depth), "reincarnated": float(on_policy)}

    def state_dict(self) -> dict:
        return {"reincarnated_at": self.reincarnated_at}

    def load_state_dict(self, d: dict) -> None:
        self.reincarnated_at = d.get("reincarnated_at")
