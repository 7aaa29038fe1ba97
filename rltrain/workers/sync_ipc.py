"""CUDA IPC weight sync: learner rank 0 and an engine on the same GPU (the plan's `cuda_ipc` edges).

Two members of one NCCL group cannot share a GPU, so an engine placed on learner rank 0's GPU (one GPU,
or a hybrid engine) takes its weights by CUDA IPC instead: per bucket, rank 0 packs the tensors into one
flat buffer per dtype on its GPU (buffers kept across syncs), sends the engine a handle to each buffer
(`torch.multiprocessing.reductions.reduce_tensor`: a few hundred bytes through Ray) and the layout; the
engine opens the handles (views of the learner's memory: nothing crosses the host) and loads them. Rank
0 waits for the engine before it overwrites a buffer with the next bucket. Needs a GPU: not run here.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterator

import torch

from rltrain.workers.sync_group import Layout, layout_of


class IpcBuffers:
    """The sending side's flat per-dtype buffers on its GPU, grown only when a bucket needs more."""

    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise RuntimeError(f"the cuda_ipc weight sync needs the learner on a GPU, it is on {device}")
        self.device = device
        self.buffers: dict[str, torch.Tensor] = {}

    def pack(self, bucket: list[tuple[str, torch.Tensor]], layout: Layout) -> dict[str, Any]:
        """Copy the bucket into the buffers (device to device) and return one IPC handle per dtype."""
        from torch.multiprocessing.reductions import reduce_tensor

        handles = {}
        for dtype, (entries, total) in layout.items():
            buf = self.buffers.get(dtype)
            if buf is None or buf.numel() < total:
                buf = self.buffers[dtype] = torch.empty(total, dtype=getattr(torch, dtype), device=self.device)
            by_name = dict(bucket)
            for e in entries:
                buf[e.offset:e.offset + by_name[e.name].numel()].copy_(by_name[e.name].reshape(-1), non_blocking=True)
            handles[dtype] = reduce_tensor(buf[:total])
        torch.cuda.current_stream(self.device).synchronize()  # the engine reads after this returns
        return handles


def open_bucket(layout: Layout, handles: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    """The receiving side: (name, view) pairs over the sender's buffers (valid until its next bucket)."""
    out = []
    for dtype, (entries, _) in layout.items():
        rebuild, args = handles[dtype]
        flat = rebuild(*args)
        out += [(e.name, flat[e.offset:e.offset + math.prod(e.shape)].view(e.shape)) for e in entries]
    return out


def send_ipc(named: Iterator[tuple[str, torch.Tensor]], workers: list, buffers: IpcBuffers | None,
             version: int, bucket_bytes: int) -> dict[str, float]:
    """Rank 0 (with buffers): per bucket, pack, hand the workers the handles, wait for them. Other ranks
    only iterate (ZeRO-3 gathers are collective across the learners)."""
    from rltrain.workers.group import RankGroup
    from rltrain.workers.weight_sync import bucket_bytes_of, iter_buckets, with_last

    t0 = time.perf_counter()
    n_buckets, n_bytes = 0, 0
    group = RankGroup(workers)
    for bucket, last in with_last(iter_buckets(named, bucket_bytes)):
        if buffers is not None and workers:
            layout = layout_of(bucket)
            handles = buffers.pack(bucket, layout)
            group.gather(group.submit("receive_ipc_bucket", layout, handles, version if last else None))
            n_bytes += bucket_bytes_of(bucket)
        n_buckets += 1
    return {"sync/buckets": float(n_buckets), "sync/bytes": float(n_bytes),
            "timing_s/weight_sync": time.perf_counter() - t0}
