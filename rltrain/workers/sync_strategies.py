"""Weight-sync strategies: how the learners' weights reach the engines, one class per method of the plan.

The placement plan (rltrain/workers/planner.py) names a method for each learner rank 0 -> engine edge;
`PlannedSync` groups the engines by method and runs one strategy per group, so the trainer calls
`connect`, `push`, `worker_replaced` and `verify` and never looks at a method's name. Registered:

- `object_store`: each bucket through Ray's object store (`Learner.sync_weights(..., "object_store")`);
- `gloo_broadcast` / `nccl_broadcast`: rank 0 and the group's engines form a process group of their
  own and rank 0 broadcasts flat per-dtype buckets (rltrain/workers/sync_group.py);
- `cuda_ipc`: an engine on rank 0's GPU opens CUDA IPC handles to rank 0's buckets (sync_ipc.py);
- `in_process`: the colocated engine adopts the learner's tensors in its own process (colocated.py).

Every rank of the learners joins every push (ZeRO-3 gathers are collective). `verify` compares a
checksum of what each engine serves with the learners' (rltrain/engines/checksum.py): a stale engine
raises `StaleEngineError` naming it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

from rltrain.workers.group import RankGroup

__all__ = ["STRATEGIES", "PlannedSync", "StaleEngineError", "SyncStrategy"]


class StaleEngineError(RuntimeError):
    """An engine serves other weights than the learners sent it."""


class SyncStrategy:
    """One method for a set of engines (indices into the run's rollout group)."""

    method = "object_store"
    learner_method = "object_store"  # what `Learner.sync_weights` is asked to do

    def __init__(self, engines: list[int]) -> None:
        self.engines = engines

    def members(self, actors) -> list:
        return [actors.workers.actors[i] for i in self.engines]

    def connect(self, actors, timeout_s: float) -> None:
        """Set-up before the first push (and after an engine of this group was replaced)."""

    def push(self, actors, version: int, bucket_bytes: int, engine_dtype: str | None) -> dict[str, float]:
        return actors.learners.call("sync_weights", self.members(actors), version, bucket_bytes, engine_dtype,
                                    self.learner_method)[0]

    def close(self) -> None:
        """Release what `connect` made."""


class BroadcastSync(SyncStrategy):
    """Rank 0 and the group's engines in a process group of their own (gloo on CPU, NCCL on GPU)."""

    method, learner_method = "gloo_broadcast", "collective"

    def __init__(self, engines: list[int]) -> None:
        super().__init__(engines)
        self.store_file: str | None = None

    def connect(self, actors, timeout_s: float) -> None:
        """A fresh group (a file store on one node, else a TCP store at rank 0's node address)."""
        from rltrain.workers.placement import single_node

        self.close()
        lead = RankGroup(actors.learners.actors[:1])
        if single_node():
            self.store_file = f"{tempfile.gettempdir()}/rltrain-sync-{uuid.uuid4().hex}"
            rendezvous = f"file://{self.store_file}"
        else:
            host, port = lead.call("sync_endpoint")[0]
            rendezvous = f"tcp://{host}:{port}"
        world = len(self.engines) + 1
        members = RankGroup(self.members(actors))
        futures = lead.submit("join_sync_group", rendezvous, world, timeout_s)
        futures += members.submit_each("join_sync_group", [(rendezvous, i + 1, world, timeout_s)
                                                           for i in range(len(self.engines))])
        RankGroup.gather(futures)

    def close(self) -> None:
        if self.store_file:
            try:
                os.remove(self.store_file)
            except FileNotFoundError:
                pass
            self.store_file = None


class NcclBroadcastSync(BroadcastSync):
    method = "nccl_broadcast"


class CudaIpcSync(SyncStrategy):
    method, learner_method = "cuda_ipc", "cuda_ipc"


class InProcessSync(SyncStrategy):
    method, learner_method = "in_process", "colocated"


STRATEGIES: dict[str, type[SyncStrategy]] = {cls.method: cls for cls in (
    SyncStrategy, BroadcastSync, NcclBroadcastSync, CudaIpcSync, InProcessSync)}


class PlannedSync:
    """The plan's weight-sync edges as strategies, one per method."""

    def __init__(self, plan, verify: bool = False) -> None:
        by_method: dict[str, list[int]] = {}
        for edge in plan.weight_sync:
            by_method.setdefault(edge.method, []).append(int(edge.dst.split("/")[1]))
        unknown = set(by_method) - set(STRATEGIES)
        if unknown:
            raise ValueError(f"weight-sync methods {sorted(unknown)} have no strategy; registered: {sorted(STRATEGIES)}")
        self.strategies = [STRATEGIES[m](engines) for m, engines in by_method.items()]
        self.verify_each_sync = verify

    @property
    def methods(self) -> str:
        return "+".join(s.method for s in self.strategies)

    def connect(self, actors, timeout_s: float) -> None:
        for s in self.strategies:
            s.connect(actors, timeout_s)

    def push(self, actors, version: int, bucket_bytes: int, engine_dtype: str | None) -> dict[str, Any]:
        """Every group's push; bytes, buckets and seconds add up over the groups."""
        out: dict[str, Any] = {}
        for s in self.strategies:
            for k, v in s.push(actors, version, bucket_bytes, engine_dtype).items():
                out[k] = out.get(k, 0.0) + v
        if self.verify_each_sync:
            out["sync/verified_engines"] = float(self.verify(actors, engine_dtype))
        return out

    def worker_replaced(self, actors, engines: list[int], timeout_s: float) -> None:
        """Engines `engines` were started anew: the groups they belong to connect again."""
        for s in self.strategies:
            if set(engines) & set(s.engines):
                s.connect(actors, timeout_s)

    def verify(self, actors, engine_dtype: str | None) -> int:
        """Compare each engine's weights checksum with the learners'; `StaleEngineError` names the first
        engine that differs. Returns the number of engines checked."""
        sent = actors.learners.call("sent_weights_checksum", engine_dtype)[0]
        served = actors.workers.call("served_weights_checksum")
        for i, got in enumerate(served):
            if got != sent:
                version = actors.workers.call("get_version")[i]
                raise StaleEngineError(
                    f"rollout/{i} serves weights other than the learners sent (checksum {got} vs {sent}; it reports "
                    f"version {version}): its weight sync did not apply")
        return len(served)

    def close(self) -> None:
        for s in self.strategies:
            s.close()
