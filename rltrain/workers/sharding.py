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


def plan_micro_batches(lengths: torch.Tensor, group_ids: torch.Tensor | None, max_rows: int,
                       max_tokens: int = 0, split_groups: bool = False) -> tuple[torch.Tensor, list[int]]:
    """(order, cuts): rows reordered longest first, cut into micro-batches of at most `max_rows` rows
    and, when `max_tokens` > 0, at most `max_tokens` padded tokens (rows x longest row), so little
    compute goes to padding. With `group_ids` whole groups move together (sorted by their longest row;
    a group larger than `max_rows` stays whole), or with `split_groups` a group's rows stay adjacent
    (longest first) but a cut may fall inside it (shared prompts: rltrain/workers/logprobs.py). An item
    alone over the token budget gets its own micro-batch."""
    if len(lengths) == 0:
        return torch.zeros(0, dtype=torch.long), [0]
    if group_ids is None:
        items = [[i] for i in range(len(lengths))]
    else:
        starts = [0] + [i for i in range(1, len(group_ids)) if group_ids[i] != group_ids[i - 1]] + [len(group_ids)]
        items = [list(range(a, b)) for a, b in zip(starts[:-1], starts[1:])]
    longest = [int(lengths[item].max()) for item in items]
    ranked = [items[k] for k in sorted(range(len(items)), key=lambda k: -longest[k])]  # stable: ties keep order
    if split_groups:
        ranked = [[i] for item in ranked for i in sorted(item, key=lambda i: -int(lengths[i]))]
    order, cuts, rows, width = [], [0], 0, 0
    for item in ranked:
        size, item_width = len(item), int(lengths[item].max())
        over_rows = rows + size > max_rows
        over_tokens = max_tokens > 0 and (rows + size) * max(width, item_width) > max_tokens
        if rows and (over_rows or over_tokens):
            cuts.append(len(order))
            rows, width = 0, 0
        order += item
        rows, width = rows + size, max(width, item_width)
    if order:
        cuts.append(len(order))
    return torch.tensor(order, dtype=torch.long), cuts


def rank_micro_batches(batch, shards: list[torch.Tensor], max_rows: int, max_tokens: int,
                       group_aligned: bool, share_prompts: bool = False) -> list[tuple[object, list[int]]]:
    """Per rank: (its rows in micro-batch order, cut points); whole groups per micro-batch when
    `group_aligned`, a group's rows adjacent when `share_prompts`. Every rank gets the same number of
    micro-batches (DeepSpeed's accumulation steps): a rank with fewer runs extra one-row micro-batches
    of a zero-weight copy of row 0, which add nothing to loss or gradient."""
    lengths = batch.attention_mask.sum(-1)
    plans = []
    for idx in shards:
        groups = batch.group_ids[idx] if group_aligned or share_prompts else None
        order, cuts = plan_micro_batches(lengths[idx], groups, max_rows, max_tokens, not group_aligned)
        plans.append((idx[order] if len(idx) else idx, cuts))
    return equal_micro_batch_counts(batch, plans, "loss_weights")


def equal_micro_batch_counts(batch, plans: list[tuple[torch.Tensor, list[int]]], weight_field: str) -> list[tuple]:
    """Every rank the same number of micro-batches (DeepSpeed's accumulation steps): per rank's (rows, cuts)
    of `batch`, (its rows, then one-row fillers copying row 0 with `weight_field` zeroed, and their cuts).
    The fillers add nothing to loss or gradient."""
    n_micro = max(1, max(len(cuts) - 1 for _, cuts in plans))
    out = []
    for rows, cuts in plans:
        missing = n_micro - (len(cuts) - 1)
        part = batch.index(torch.cat([rows, torch.zeros(missing, dtype=torch.long)]))
        if missing:
            getattr(part, weight_field)[len(rows):] = 0.0
        out.append((part, cuts + [cuts[-1] + k + 1 for k in range(missing)]))
    return out


def inference_chunks(batch, max_rows: int, max_tokens: int, share_prompts: bool = False) -> list[torch.Tensor]:
    """Index sets for a forward-only pass (log-probs): rows bucketed by length under the same caps (a
    group's rows adjacent when `share_prompts`)."""
    order, cuts = plan_micro_batches(batch.attention_mask.sum(-1), batch.group_ids if share_prompts else None,
                                     max_rows, max_tokens, split_groups=True)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
