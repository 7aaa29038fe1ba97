"""RolloutWorker: the Ray actor that owns one generation engine.

It generates n samples per prompt (token ids in, token ids + sampling log-probs out), takes weight
buckets from the learner, and reports the weight version it generated with.
"""

from __future__ import annotations

import os
import time

import torch

from rltrain.engines.base import Sample, SamplingConfig


def resolve_engine(name: str) -> str:
    """`auto`: vLLM when a GPU is present, transformers `generate` otherwise (see README)."""
    if name != "auto":
        return name
    return "vllm" if torch.cuda.is_available() else "transformers"


class RolloutWorker:
    def __init__(self, model_path: str, engine: str, dtype: str, seed: int, threads: int = 0,
                 gpu_memory_utilization: float = 0.3, max_model_len: int = 512) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.engine_name = resolve_engine(engine)
        if self.engine_name == "vllm":
            from rltrain.engines.vllm_engine import VLLMEngine

            self.engine = VLLMEngine(model_path, dtype, seed, gpu_memory_utilization, max_model_len)
        elif self.engine_name == "transformers":
            from rltrain.engines.transformers_engine import HFEngine

            self.engine = HFEngine(model_path, dtype, seed)
        else:
            raise ValueError(f"rollout.engine: unknown engine {engine!r}; allowed: auto, vllm, transformers")
        self.version = 0
        self.pid = os.getpid()

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> dict:
        t0 = time.perf_counter()
        samples: list[Sample] = self.engine.generate(prompt_ids, sampling)
        return {"samples": samples, "version": self.version, "seconds": time.perf_counter() - t0,
                "engine": self.engine_name}

    def load_bucket(self, bucket: list[tuple[str, torch.Tensor]], version: int | None) -> None:
        """One bucket of weights; `version` is set on the last bucket of a sync."""
        self.engine.load_weights(bucket)
        if version is not None:
            if hasattr(self.engine, "apply_staged"):
                self.engine.apply_staged()
            self.version = version
            self.engine.version = version

    def get_version(self) -> int:
        return self.version
