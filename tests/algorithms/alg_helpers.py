"""Shared factories for the algorithms tests (random but seeded batches); a plain module, not a conftest,
so it cannot clash with other test folders' conftest files."""

from __future__ import annotations

import torch

from algorithms import RolloutBatch


def random_batch(group_sizes=(3, 3, 2, 4), T: int = 7, seed: int = 0, binary: bool = True) -> RolloutBatch:
    """Right-padded batch with groups of different sizes, random lengths, one all-equal-reward group."""
    g = torch.Generator().manual_seed(seed)
    N = sum(group_sizes)
    group_ids = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
    ids = torch.randint(1, 5, (N, T), generator=g) * mask.long()
    rewards = torch.randint(0, 2, (N,), generator=g).float() if binary else torch.rand(N, generator=g)
    rewards[group_ids == 1] = 1.0  # an all-equal group
    old = -torch.rand(N, T, generator=g) * 2 - 0.05
    return RolloutBatch(
        response_ids=ids, response_mask=mask, rewards=rewards, group_ids=group_ids,
        prompt_keys=[f"p{int(k)}" for k in group_ids], old_logp=old,
        sampling_logp=old + 0.1 * torch.randn(N, T, generator=g),
        ref_logp=old + 0.2 * torch.randn(N, T, generator=g),
        entropy=torch.rand(N, T, generator=g) * 2, prox_logp=old + 0.05 * torch.randn(N, T, generator=g),
        versions=torch.zeros(N, dtype=torch.long), step=1,
        turn_ids=torch.where(mask > 0, 0, -1).long(), token_rewards=torch.zeros(N, T),
        gt_probs=torch.full((N, 1), float("nan")))


def current_logp(batch: RolloutBatch, scale: float = 0.4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (batch.old_logp + scale * torch.randn(batch.old_logp.shape, generator=g)).clamp(max=-1e-3)
