"""RolloutWorker: the Ray actor that owns one generation engine (any engine of `rltrain.engines`).

It generates n samples per prompt and continues sequences (token ids in, token ids + sampling
log-probs out), takes weight buckets from the learner, and reports the weight version it generated
with. It knows engines only through the protocol in `rltrain.engines.base`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from rltrain.engines import engine_class, resolve_engine_name
from rltrain.engines.base import Sample, SamplingConfig


class RolloutWorker:
    def __init__(self, model_path: str, engine: str, dtype: str, seed: int, threads: int = 0,
                 options: dict[str, Any] | None = None) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.engine_name = resolve_engine_name(engine, torch.cuda.is_available())
        self.engine = engine_class(self.engine_name)(model_path, dtype, seed, **(options or {}))
        self.pid = os.getpid()

    def _timed(self, fn, ids: list[list[int]], sampling: SamplingConfig) -> dict:
        t0 = time.perf_counter()
        samples: list[Sample] = fn(ids, sampling)
        return {"samples": samples, "version": self.engine.version, "seconds": time.perf_counter() - t0,
                "engine": self.engine_name}

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> dict:
        return self._timed(self.engine.generate, prompt_ids, sampling)

    def continue_sequences(self, sequences: list[list[int]], sampling: SamplingConfig) -> dict:
        return self._timed(self.engine.continue_sequences, sequences, sampling)

    def load_bucket(self, bucket: list[tuple[str, torch.Tensor]], version: int | None) -> None:
        """One bucket of weights; `version` is set on the last bucket of a sync."""
        self.engine.load_weights(bucket)
        if version is not None:
            self.engine.finish_weight_update(version)

    def join_sync_group(self, rendezvous: str, rank: int, world_size: int, timeout_s: float) -> None:
        """Join the weight-sync process group (learner rank 0 is its rank 0; this worker is `rank`)."""
        from rltrain.workers.sync_group import SyncGroup

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.sync_group = SyncGroup(rendezvous, rank, world_size, device, timeout_s)

    def receive_bucket(self, layout, version: int | None) -> None:
        """One bucket by broadcast (the collective sync): receive, hand the views to the engine."""
        named = self.sync_group.receive(layout)  # views of buffers the next bucket reuses
        if getattr(self.engine, "keeps_loaded_tensors", False):
            named = [(name, t.clone()) for name, t in named]
        self.engine.load_weights(named)
        if version is not None:
            self.engine.finish_weight_update(version)

    def receive_ipc_bucket(self, layout, handles: dict, version: int | None) -> None:
        """One bucket by CUDA IPC (the engine shares learner rank 0's GPU): open the handles, load the views
        (copied by the engine before this returns, or cloned when it keeps what it is given)."""
        from rltrain.workers.sync_ipc import open_bucket

        named = open_bucket(layout, handles)
        if getattr(self.engine, "keeps_loaded_tensors", False):
            named = [(name, t.clone()) for name, t in named]
        self.engine.load_weights(named)
        if version is not None:
            self.engine.finish_weight_update(version)

    def served_weights_checksum(self) -> dict[str, int]:
        """`weights_checksum` of the weights the engine serves (rltrain/engines/checksum.py)."""
        return self.engine.weights_checksum()

    def engine_weights(self) -> dict[str, torch.Tensor]:
        """The engine's parameters by name, for checks (engines that expose `params`, as the transformers one)."""
        params = getattr(self.engine, "params", None)
        if params is None:
            raise NotImplementedError(f"{type(self.engine).__name__} does not expose its parameters")
        return {k: v.detach().clone() for k, v in params.items()}

    def peak_rss_mb(self) -> float:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def sampling_state(self) -> dict:
        return self.engine.sampling_state() if hasattr(self.engine, "sampling_state") else {}

    def load_sampling_state(self, state: dict) -> None:
        if state and hasattr(self.engine, "load_sampling_state"):
            self.engine.load_sampling_state(state)

    def get_version(self) -> int:
        return self.engine.version

    def free_memory(self) -> bool:
        return self.engine.free_memory()

    def restore_memory(self) -> bool:
        return self.engine.restore_memory()
