"""Reference: a frozen copy of the initial (or a named) policy that computes reference log-probs.

Started only when a stage of the algorithm reads `ref_logp` (KL regularisers, ReMix's convex KL).
"""

from __future__ import annotations

import torch

from rltrain.workers.logprobs import response_logprobs


class Reference:
    def __init__(self, model_path: str, temperature: float, micro_batch_size: int, threads: int = 0,
                 max_tokens_per_micro_batch: int = 0, dtype: str = "float32", attn_implementation: str = "sdpa",
                 share_prompts: bool = False) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.dtype, self.attn_implementation = getattr(torch, dtype), attn_implementation
        self.load_model(model_path)
        self.temperature = temperature
        self.micro_batch_size, self.max_tokens = micro_batch_size, max_tokens_per_micro_batch
        self.share_prompts = share_prompts

    def ping(self) -> bool:
        return True

    def load_model(self, model_path: str) -> None:
        """(Re)load the frozen policy, e.g. the current policy at ReMix's reincarnation."""
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=self.dtype,
                                                          attn_implementation=self.attn_implementation
                                                          ).to(self.device).eval()

    @torch.no_grad()
    def compute_logprobs(self, batch) -> torch.Tensor:
        from rltrain.workers.sharding import inference_chunks

        out = torch.zeros(batch.response_ids.shape)
        for idx in inference_chunks(batch, self.micro_batch_size, self.max_tokens, self.share_prompts):
            mb = batch.index(idx)
            logp, _ = response_logprobs(self.model, mb.input_ids.to(self.device), mb.attention_mask.to(self.device),
                                        mb.resp_start.to(self.device), mb.response_ids.to(self.device),
                                        self.temperature, share_prompts=self.share_prompts)
            out[idx] = logp.cpu()
        return out
