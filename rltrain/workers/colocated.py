"""Colocated placement (`placement: colocated`): the rollout engine lives in learner rank 0's process.

verl's and OpenRLHF's "hybrid" mode, the one most single-node users run: one set of devices (here
one set of CPU cores, or one GPU) for both roles, taking turns. `ColocatedLearner` is learner rank 0
plus the engine of a `RolloutWorker` (not an actor of its own), and answers the rollout workers'
calls (`generate`, `continue_sequences`, `get_version`, ...), so the driver sees a rollout group of
one whose only member is learner rank 0; the trainer loop does not change.

A weight sync is `engine.share_weights` on the learner's own (name, tensor) stream: on CPU with the
transformers engine, every parameter whose dtype matches points at the learner's storage (nothing
is copied; the first sync frees the engine's own copy) and the rest is copied in place. The
engine's memory is released when the update starts (`free_memory`) and comes back with the sync.

On a GPU the same interface holds: the transformers engine shares CUDA tensors the same way; a vLLM
engine copies (`load_weights`) and sleeps during the update with `rollout.vllm.enable_sleep_mode`
(its `free_memory` / `restore_memory`), which is verl's hybrid engine. Not run here: no GPU.
"""

from __future__ import annotations

import time
from typing import Any

from rltrain.engines.base import SamplingConfig
from rltrain.workers.deepspeed_role import RankSpec
from rltrain.workers.learner import Learner
from rltrain.workers.rollout_worker import RolloutWorker


class ColocatedLearner(Learner):
    def __init__(self, spec: RankSpec, *, temperature: float, algorithm: dict, worker: dict[str, Any]) -> None:
        """`spec`, `temperature`, `algorithm`: learner rank 0's; `worker`: the engine's RolloutWorker keywords."""
        super().__init__(spec, temperature=temperature, algorithm=algorithm)
        self.worker = RolloutWorker(**worker)
        self.engine_freed = False
        if self.worker.engine.adopts_storage:  # from now on the engine holds no copy of its own
            self.worker.engine.share_weights(self._engine_params(None))

    # ----- the rollout worker's side ----------------------------------------------------------
    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> dict:
        return self.worker.generate(prompt_ids, sampling)

    def continue_sequences(self, sequences: list[list[int]], sampling: SamplingConfig) -> dict:
        return self.worker.continue_sequences(sequences, sampling)

    def get_version(self) -> int:
        return self.worker.get_version()

    def sampling_state(self) -> dict:
        return self.worker.sampling_state()

    def load_sampling_state(self, state: dict) -> None:
        self.worker.load_sampling_state(state)

    def free_memory(self) -> bool:
        return self.worker.free_memory()

    def restore_memory(self) -> bool:
        return self.worker.restore_memory()

    def peak_rss_mb(self) -> float:
        return self.worker.peak_rss_mb()

    def engine_weights(self) -> dict:
        return self.worker.engine_weights()

    def served_weights_checksum(self) -> dict[str, int]:
        return self.worker.served_weights_checksum()

    def engine_shares_storage(self) -> float:
        """Fraction of the engine's parameters whose storage is the learner's own (1.0 when the dtypes match)."""
        mine = {t.data_ptr() for t in self.engine.module.parameters()}
        params = list(self.worker.engine.model.parameters())
        return sum(p.data_ptr() in mine for p in params) / max(1, len(params))

    # ----- the learner's side -----------------------------------------------------------------
    def train_minibatch(self, shard, cuts: list[int]) -> dict[str, Any]:
        if not self.engine_freed:  # the engine is idle until the sync: release what it holds on its own
            self.engine_freed = self.worker.engine.free_memory()
        return super().train_minibatch(shard, cuts)

    def sync_weights(self, workers: list, version: int, bucket_bytes: int, engine_dtype: str | None = None,
                     method: str = "colocated") -> dict[str, float]:
        """The engine adopts the learner's tensors in place (`workers` is this actor itself: ignored)."""
        t0 = time.perf_counter()
        copied = self.worker.engine.share_weights(self._sync_params(host=False))  # on the learner's device
        self.worker.engine.finish_weight_update(version)
        self.engine_freed = False
        return {"sync/buckets": 0.0, "sync/bytes": float(copied), "timing_s/weight_sync": time.perf_counter() - t0}
