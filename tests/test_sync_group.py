"""The collective weight sync's packing: layouts by dtype, flat buffers kept across buckets, and a
real gloo broadcast between two group members (threads of this process, each with its own group)."""

from __future__ import annotations

import threading

import pytest
import torch

from rltrain.workers.net import free_port
from rltrain.workers.sync_group import Entry, SyncGroup, layout_of


def test_layout_groups_by_dtype_with_element_offsets():
    bucket = [("a", torch.zeros(2, 3)), ("b", torch.zeros(4, dtype=torch.bfloat16)), ("c", torch.zeros(5)),
              ("d", torch.zeros(1, 2, dtype=torch.bfloat16))]
    layout = layout_of(bucket)
    assert layout == {"float32": ([Entry("a", (2, 3), 0), Entry("c", (5,), 6)], 11),
                      "bfloat16": ([Entry("b", (4,), 0), Entry("d", (1, 2), 4)], 6)}


@pytest.mark.parametrize("kind", ["file", "tcp"])
def test_broadcast_round_trip_is_bit_exact_and_reuses_buffers(tmp_path, kind):
    rendezvous = f"file://{tmp_path}/store" if kind == "file" else f"tcp://127.0.0.1:{free_port()}"
    groups: dict[int, SyncGroup] = {}

    def join(rank: int) -> None:
        groups[rank] = SyncGroup(rendezvous, rank, 2, "cpu", timeout_s=30)

    threads = [threading.Thread(target=join, args=(r,)) for r in (0, 1)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    g = torch.Generator().manual_seed(0)
    buckets = [[("w", torch.randn(3, 4, generator=g)), ("h", torch.randn(7, generator=g).to(torch.bfloat16)),
                ("e", torch.randn(2, 2, generator=g))],
               [("x", torch.randn(5, generator=g)), ("y", torch.randn(2, generator=g).to(torch.bfloat16))]]
    received: list[dict[str, torch.Tensor]] = []
    for bucket in buckets:
        layout = layout_of(bucket)
        out: dict[str, torch.Tensor] = {}

        def recv() -> None:
            out.update({n: t.clone() for n, t in groups[1].receive(layout)})

        t = threading.Thread(target=recv)
        t.start()
        sent = groups[0].send(bucket, layout)
        t.join()
        assert sent == sum(x.numel() * x.element_size() for _, x in bucket)
        received.append(out)
    for bucket, out in zip(buckets, received):
        for name, tensor in bucket:
            assert out[name].dtype == tensor.dtype and torch.equal(out[name], tensor), name
    # the second, smaller bucket reused the first one's buffers (no re-allocation)
    assert groups[0].buffers["float32"].numel() == 16 and groups[1].buffers["bfloat16"].numel() == 7
