"""SFT steps as tensors: encoded examples -> rows (one example each, or packed), the loss weights that
make a step's loss its mean token loss whatever the split, and the ranks' shards.

A row's `loss_mask` marks the tokens to predict; an example's first token is never one (nothing
before it in the example). Packed rows put examples one after another up to `max_length` tokens, with
position ids restarting at 0 for each (the learner keeps their attention apart).
"""

from __future__ import annotations

import math

import torch

from rltrain.workers.sft_learner import TokenBatch

__all__ = ["pack", "rank_shards", "to_rows"]


def pack(examples: list[tuple[list[int], list[int]]], max_length: int) -> list[list[tuple[list[int], list[int]]]]:
    """Examples grouped into rows of at most `max_length` tokens, in order (first fit on the current row)."""
    rows: list[list[tuple[list[int], list[int]]]] = []
    used = max_length + 1
    for ids, mask in examples:
        if used + len(ids) > max_length:
            rows.append([])
            used = 0
        rows[-1].append((ids, mask))
        used += len(ids)
    return rows


def to_rows(examples: list[tuple[list[int], list[int]]], pad_id: int, max_length: int, packing: bool) -> TokenBatch:
    """The step's TokenBatch: every marked token weighs 1 / (marked tokens in the step)."""
    groups = pack(examples, max_length) if packing else [[e] for e in examples]
    width = max(sum(len(ids) for ids, _ in g) for g in groups)
    n = len(groups)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.long)
    for r, group in enumerate(groups):
        at = 0
        for ids, mask in group:
            k = len(ids)
            input_ids[r, at:at + k] = torch.tensor(ids, dtype=torch.long)
            attention[r, at:at + k] = 1
            positions[r, at:at + k] = torch.arange(k)
            loss_mask[r, at + 1:at + k] = torch.tensor(mask[1:], dtype=torch.long)
            at += k
        positions[r, at:] = torch.arange(width - at)  # padding: a block of its own after the examples
    marked = int(loss_mask.sum())
    weights = loss_mask.to(torch.float32) / max(1, marked)
    return TokenBatch(input_ids, attention, positions, loss_mask, weights)


def rank_shards(batch: TokenBatch, ranks: int, micro: int, max_tokens: int = 0) -> list[tuple[TokenBatch, list[int]]]:
    """Equal shards per rank (zero-weight copies of row 0 fill the last) and their micro-batch cuts: at
    most `micro` rows and, when `max_tokens` > 0, at most `max_tokens` padded tokens (rows x longest row)
    a micro-batch, longest rows first (rltrain/workers/sharding.plan_micro_batches). Every rank gets the
    same number of micro-batches (DeepSpeed's accumulation steps): a rank with fewer runs extra one-row
    micro-batches of a zero-weight copy, which add nothing to loss or gradient."""
    from rltrain.workers.sharding import equal_micro_batch_counts, plan_micro_batches

    per_rank = math.ceil(len(batch) / ranks)
    idx = torch.arange(per_rank * ranks)
    real = idx < len(batch)
    padded = batch.index(torch.where(real, idx, torch.zeros_like(idx)))
    padded.weights = padded.weights * real.view(-1, 1)
    lengths = padded.attention_mask.sum(-1)
    plans = []
    for r in range(ranks):
        rows = idx[r * per_rank:(r + 1) * per_rank]
        order, cuts = plan_micro_batches(lengths[rows], None, micro, max_tokens)
        plans.append((rows[order], cuts))
    return equal_micro_batch_counts(padded, plans, "weights")
