"""One optimizer step of a trained role (the policy's learners, the critic) on a mini-batch."""

from __future__ import annotations

import algorithms
from algorithms import RolloutBatch
from rltrain.workers.group import RankGroup
from rltrain.workers.sharding import rank_micro_batches, shard_for_ranks


def update_minibatch(learners: RankGroup, mb: RolloutBatch, micro_batch_size: int, group_aligned: bool,
                     max_tokens: int = 0, share_prompts: bool = False) -> dict[str, float]:
    """One optimizer step on `mb`: shard rows over the learner ranks, bucket each shard's rows by
    length into micro-batches (row and token caps; the same count on every rank; a group's rows
    adjacent when the learners share prompts), train, and reduce the algorithm metrics exactly."""
    shards = shard_for_ranks(len(mb), len(learners), mb.group_ids if group_aligned else None)
    ranks = learners.call_each("train_minibatch",
                               rank_micro_batches(mb, shards, micro_batch_size, max_tokens, group_aligned,
                                                                  share_prompts))
    out = algorithms.reduce_metrics([m for r in ranks for m in r["algo"]])
    out["actor/grad_norm"] = ranks[0]["actor/grad_norm"]
    out["actor/lr"] = ranks[0]["actor/lr"]
    out["faults/skipped"] = max(r["faults/skipped"] for r in ranks)
    out["timing_s/update_rank_max"] = max(r["timing_s/update_rank"] for r in ranks)
    out["timing_s/optimizer_step"] = max(r["timing_s/optimizer_step"] for r in ranks)
    out["perf/learner_peak_rss_mb"] = max(r["perf/learner_peak_rss_mb"] for r in ranks)
    return out
