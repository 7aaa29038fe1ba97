"""Reference: a frozen copy of the initial (or a named) policy that computes reference log-probs.

Started only when a stage of the algorithm reads `ref_logp` (KL regularisers, ReMix's convex KL).
"""

from __future__ import annotations

import torch

from rltrain.workers.logprobs import response_logprobs


class Reference:
    def __init__(self, model_path: str, temperature: float, micro_batch_size: int, threads: int = 0) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.load_model(model_path)
        self.temperature = temperature
        self.micro_batch_size = micro_batch_size

    def load_model(self, model_path: str) -> None:
        """(Re)load the frozen policy, e.g. the current policy at ReMix's reincarnation."""
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(self.device).eval()

    @torch.no_grad()
    def compute_logprobs(self, batch) -> torch.Tensor:
        out = []
        for start in range(0, len(batch), self.micro_batch_size):
            mb = batch.index(torch.arange(start, min(start + self.micro_batch_size, len(batch))))
            logp, _ = response_logprobs(self.model, mb.input_ids.to(self.device), mb.attention_mask.to(self.device),
                                        mb.resp_start.to(self.device), mb.response_ids.to(self.device),
                                        self.temperature)
            out.append(logp.cpu())
        return torch.cat(out)
