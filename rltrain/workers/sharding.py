"""How an update batch is cut: mini-batches (one optimizer step each), rank shards, micro-batches.

Cuts never change the loss: `loss_weights` were computed on the whole batch. When an algorithm
needs whole groups together (PACS's leave-one-out baseline), cuts fall on group boundaries.
"""

from __future__ import annotations

import torch


def _even_cuts(n: int, parts: int) -> list[int]:
    return torch.linspace(0, n, parts + 1).round().long().tolist()


def _group_cuts(group_ids: torch.Tensor, parts: int) -> list[int]:
    """Cut points at group starts, as even as the groups allow (group ids are contiguous runs)."""
    n = len(group_ids)
    starts = [0] + [i for i in range(1, n) if group_ids[i] != group_ids[i - 1]]
    cuts = [0]
    for target in _even_cuts(n, parts)[1:-1]:
        best = min(starts, key=lambda s: abs(s - target))
        cuts.append(max(best, cuts[-1]))
    cuts.append(n)
    return cuts


def split_indices(n: int, parts: int, group_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
    """`parts` contiguous index ranges covering 0..n-1 (some may be empty when n < parts)."""
    cuts = _group_cuts(group_ids, parts) if group_ids is not None else _even_cuts(n, parts)
    return [torch.arange(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def shard_for_ranks(n: int, ranks: int, group_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
    return split_indices(n, ranks, group_ids)


def minibatch_slices(batch, mini_batches: int, group_aligned: bool) -> list[torch.Tensor]:
    parts = [p for p in split_indices(len(batch), mini_batches, batch.group_ids if group_aligned else None) if len(p)]
    return parts


def pad_shard(batch, idx: torch.Tensor, rows: int):
    """This rank's rows, padded with zero-weight copies of row 0 up to `rows` rows (every rank must
    run the same number of micro-steps; padding contributes nothing to loss or gradient)."""
    from algorithms import RolloutBatch

    if len(idx) >= rows:
        return batch.index(idx)
    pad = batch.index(torch.zeros(rows - len(idx), dtype=torch.long))
    pad.loss_weights = torch.zeros_like(pad.loss_weights)
    return RolloutBatch.cat([batch.index(idx), pad]) if len(idx) else pad


def micro_cuts(shard, n_micro: int, group_aligned: bool) -> list[int]:
    """Micro-batch boundaries within a rank's shard."""
    if group_aligned:
        return _group_cuts(shard.group_ids, n_micro)
    return _even_cuts(len(shard), n_micro)
