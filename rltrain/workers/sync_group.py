"""Weight sync as a collective: learner rank 0 broadcasts flat buckets to the rollout workers.

Learner rank 0 (group rank 0) and every rollout worker (ranks 1..n) join a process group of their
own, apart from the learners' DeepSpeed group: gloo on CPU, NCCL on GPU. The rendezvous is a file
store on a one-node cluster (nothing listens on the network: torch's TCP store would listen on every
interface) and a TCP store that rank 0 hosts at its node address otherwise. It is created once at
start-up; a replaced worker makes everyone join a fresh group (a new rendezvous).

A sync walks the same (name, tensor) stream as the object-store path (`weight_sync.iter_buckets`);
each bucket is packed into one contiguous buffer per dtype (buffers kept across syncs and grown only
when a bucket needs more), its layout (names, shapes, offsets) goes to the workers as a small Ray
call, and the buffers go by `broadcast`; each worker unpacks views of its own persistent buffers and
hands them to the engine's `load_weights`, which copies them into its parameters.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Entry:
    name: str
    shape: tuple[int, ...]
    offset: int  # in elements, within its dtype's buffer


# dtype name -> the bucket's entries of that dtype and their total element count
Layout = dict[str, tuple[list[Entry], int]]


def layout_of(bucket: list[tuple[str, torch.Tensor]]) -> Layout:
    out: dict[str, tuple[list[Entry], int]] = {}
    for name, tensor in bucket:
        key = str(tensor.dtype).removeprefix("torch.")
        entries, total = out.get(key, ([], 0))
        entries.append(Entry(name, tuple(tensor.shape), total))
        out[key] = (entries, total + tensor.numel())
    return out


class SyncGroup:
    """One member's end of the weight-sync process group, with its persistent flat buffers."""

    def __init__(self, rendezvous: str, rank: int, world_size: int, device: str = "cpu",
                 timeout_s: float = 300.0) -> None:
        """`rendezvous`: `file:///path` (one node) or `tcp://host:port` (rank 0 listens there)."""
        timeout = timedelta(seconds=timeout_s)
        if rendezvous.startswith("file://"):
            store = dist.FileStore(rendezvous.removeprefix("file://"), world_size)
            store.set_timeout(timeout)
        else:
            host, port = rendezvous.removeprefix("tcp://").rsplit(":", 1)
            store = dist.TCPStore(host, int(port), world_size, is_master=rank == 0, timeout=timeout)
        if device == "cuda":
            # vLLM sets NCCL_CUMEM_ENABLE=0 in its processes; every member of a group must agree with it
            os.environ["NCCL_CUMEM_ENABLE"] = "0"
            opts = dist.ProcessGroupNCCL.Options()
            opts._timeout = timeout  # sync.timeout_s bounds every NCCL call, as it does gloo's
            self.pg = dist.ProcessGroupNCCL(store, rank, world_size, opts)
        else:
            self.pg = dist.ProcessGroupGloo(store, rank, world_size, timeout)
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.buffers: dict[str, torch.Tensor] = {}
        self.store = store  # rank 0 serves the rendezvous; keep it alive with the group

    def buffer(self, dtype: str, numel: int) -> torch.Tensor:
        buf = self.buffers.get(dtype)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=getattr(torch, dtype), device=self.device)
            self.buffers[dtype] = buf
        return buf[:numel]

    def broadcast(self, tensor: torch.Tensor) -> None:
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.pg.broadcast([tensor], opts).wait()

    def send(self, bucket: list[tuple[str, torch.Tensor]], layout: Layout) -> int:
        """Rank 0: pack each dtype's tensors into its buffer and broadcast it; returns bytes sent."""
        tensors = dict(bucket)
        sent = 0
        for dtype, (entries, total) in layout.items():
            flat = self.buffer(dtype, total)
            for e in entries:
                t = tensors[e.name]
                flat[e.offset:e.offset + t.numel()].copy_(t.reshape(-1))
            self.broadcast(flat)
            sent += flat.numel() * flat.element_size()
        return sent

    def receive(self, layout: Layout) -> Iterator[tuple[str, torch.Tensor]]:
        """Ranks 1..n: receive each dtype's buffer and yield (name, view) pairs into it."""
        for dtype, (entries, total) in layout.items():
            flat = self.buffer(dtype, total)
            self.broadcast(flat)
            for e in entries:
                yield e.name, flat[e.offset:e.offset + math.prod(e.shape)].view(e.shape)


def send_collective(named: Iterator[tuple[str, torch.Tensor]], workers: list, group: SyncGroup | None,
                    version: int, bucket_bytes: int) -> dict[str, float]:
    """Rank 0 (with a group): per bucket, tell every worker its layout, then broadcast it. Other
    ranks only iterate (ZeRO-3 gathers are collective across the learners)."""
    from rltrain.workers.group import RankGroup
    from rltrain.workers.weight_sync import iter_buckets, with_last

    t0 = time.perf_counter()
    n_buckets, n_bytes = 0, 0
    workers_group = RankGroup(workers)
    for bucket, last in with_last(iter_buckets(named, bucket_bytes)):
        if group is not None and workers:
            layout = layout_of(bucket)
            pending = workers_group.submit("receive_bucket", layout, version if last else None)
            n_bytes += group.send(bucket, layout)
            workers_group.gather(pending)
        n_buckets += 1
    return {"sync/buckets": float(n_buckets), "sync/bytes": float(n_bytes),
            "timing_s/weight_sync": time.perf_counter() - t0}
