"""Learner -> rollout engine weight sync in buckets.

Parameters are packed into buckets of at most `bucket_bytes` and each bucket is one RPC per rollout
worker (never one per parameter). Under ZeRO-3 every rank joins each parameter gather, so the
caller must run this on all ranks; only the ranks given workers send. The last bucket carries the
new version number, which the engine reports with everything it generates afterwards.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Iterator

import torch


def _gathered(param: torch.nn.Parameter, zero3: bool):
    if not zero3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters([param], modifier_rank=None)


def iter_full_params(module: torch.nn.Module, zero3: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, full CPU tensor) for every parameter, tied aliases included (vLLM's CPU build
    repacks lm_head separately from tied embeddings, so it needs `lm_head.weight` too); a collective
    under ZeRO-3."""
    for name, param in module.named_parameters(remove_duplicate=False):
        with _gathered(param, zero3):
            # a gathered ZeRO-3 parameter is freed after the block, so it is copied; a CPU parameter is
            # sent as it is (serialising it for the RPC copies it once anyway)
            yield name, param.detach().to("cpu", copy=zero3)


def iter_sync_params(module: torch.nn.Module, zero3: bool, send: bool, host: bool
                     ) -> Iterator[tuple[str, torch.Tensor]]:
    """The weight sync's stream: on the sending rank (name, tensor) for every parameter, tied aliases
    included, where it lives (`host`: a CPU copy, for Ray's object store; a gathered ZeRO-3 parameter is
    freed after its block, so it is copied, on its device); on the other ranks nothing, after joining
    each ZeRO-3 gather (a collective). No full copy of the model is made on any rank."""
    if not send and not zero3:
        return
    for name, param in module.named_parameters(remove_duplicate=False):
        with _gathered(param, zero3):
            if send:
                t = param.detach()
                yield name, (t.to("cpu", copy=zero3) if host else (t.clone() if zero3 else t))


def full_state_dict(module: torch.nn.Module, zero3: bool) -> dict[str, torch.Tensor]:
    return dict(iter_full_params(module, zero3))


def iter_buckets(named: Iterator[tuple[str, torch.Tensor]], bucket_bytes: int
                 ) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group (name, tensor) pairs into buckets of at most `bucket_bytes` (a larger single tensor
    gets a bucket of its own)."""
    bucket, size = [], 0
    for name, tensor in named:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


def with_last(buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> Iterator[tuple[list[tuple[str, torch.Tensor]], bool]]:
    """(bucket, whether it is the last) for each bucket: the last one carries the sync's new version."""
    current = next(buckets, None)
    while current is not None:
        following = next(buckets, None)
        yield current, following is None
        current = following


def bucket_bytes_of(bucket: list[tuple[str, torch.Tensor]]) -> int:
    return sum(t.numel() * t.element_size() for _, t in bucket)


def send_buckets(named: Iterator[tuple[str, torch.Tensor]], workers: list, version: int,
                 bucket_bytes: int) -> dict[str, float]:
    """Send (name, tensor) pairs (`iter_full_params`, or LoRA's merged weights) to `workers` (Ray actor
    handles with `load_bucket`) in buckets; every rank iterates (ZeRO-3 gathers are collective), ranks
    without workers send nothing. Returns metrics."""
    import ray

    from rltrain.workers.group import RankGroup

    group = RankGroup(workers)
    t0 = time.perf_counter()
    n_buckets, n_bytes = 0, 0
    pending: list = []
    for bucket, last in with_last(iter_buckets(named, bucket_bytes)):
        if workers:
            ref = ray.put(bucket)
            group.gather(pending)  # at most one bucket in flight per worker
            pending = group.submit("load_bucket", ref, version if last else None)
            n_bytes += bucket_bytes_of(bucket)
        n_buckets += 1
    group.gather(pending)
    return {"sync/buckets": float(n_buckets), "sync/bytes": float(n_bytes),
            "timing_s/weight_sync": time.perf_counter() - t0}
