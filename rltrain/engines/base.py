"""The engine protocol every rollout engine implements, and a base class with its defaults.

An engine generates from token ids (token-in/token-out: the trainer never re-tokenises generated
text): n samples per prompt with stop conditions, each sampled token's log-probability under the
sampling distribution; it continues given sequences (multi-turn: prompt + earlier turns +
observations, as ids); loads weights in buckets and applies them when the last bucket of a sync
arrived (`finish_weight_update`), reporting the version it generates with; and frees / restores its
memory where it can (colocated placement). Engines are constructed as
`Engine(model_path, dtype, seed, **options)` with the options of `rollout.<engine name>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

import torch


@dataclass
class SamplingConfig:
    n: int = 1
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    greedy: bool = False
    stop_token_ids: tuple[int, ...] = ()  # stop after any of these (besides EOS); the stop token is kept


@dataclass
class Sample:
    """One completion: `prompt_index` points into the prompt (or sequence) list given to the engine."""

    prompt_index: int
    response_ids: list[int]
    logprobs: list[float]  # one per response token, under the sampling distribution
    finished: bool  # stopped on EOS or a stop token (False = cut at max_new_tokens)
    stop_reason: str = "length"  # "eos", "stop" (a stop token) or "length"


@runtime_checkable
class RolloutEngine(Protocol):
    version: int

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        """n samples per prompt, grouped by prompt in order (prompt 0's n samples first)."""

    def continue_sequences(self, sequences: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        """One continuation per given sequence (sampling.n is ignored), in order."""

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Take one bucket of (HF parameter name, tensor) pairs."""

    def finish_weight_update(self, version: int) -> None:
        """The last bucket of a sync arrived: apply what is staged; generate as `version` from now on."""

    def free_memory(self) -> bool:
        """Release memory not needed while the learner updates; False when the engine cannot."""

    def restore_memory(self) -> bool:
        """Undo `free_memory` (a no-op when nothing is freed); False when the engine cannot."""


class EngineBase:
    """Defaults for the protocol: continuation through `generate`, version bookkeeping, no freeing."""

    version: int = 0
    # continue_sequences resumes a sample cut at a token budget exactly as if generation had gone on
    # (same ids, log-probs of the same distribution): partial rollouts may use this engine
    resumes_partial: bool = False
    # load_weights keeps references to the tensors it is given (it stages them until
    # finish_weight_update): a sync must hand it tensors of their own, not views of reused buffers
    keeps_loaded_tensors: bool = False
    # share_weights adopts the learner's tensors' storage (colocated: the engine then holds no copy of its
    # own); an engine that copies is not given the initial weights again (it loaded them from the model)
    adopts_storage: bool = False

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        raise NotImplementedError

    def continue_sequences(self, sequences: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        one = SamplingConfig(**{**sampling.__dict__, "n": 1})
        return self.generate(sequences, one)

    def finish_weight_update(self, version: int) -> None:
        self.version = version

    def named_weights(self) -> Iterable[tuple[str, torch.Tensor]]:
        """The weights the engine serves, each stored tensor once (tied aliases left out), for `sync.verify`
        (rltrain/engines/checksum.py: names and cuts do not matter). Default: an engine holding a torch
        module as `model`."""
        model = getattr(self, "model", None)
        if model is None:
            raise NotImplementedError(f"{type(self).__name__} cannot report its weights (sync.verify)")
        return model.named_parameters()

    def weights_checksum(self) -> dict[str, int]:
        """rltrain/engines/checksum.py over `named_weights` (an engine may compute it where its weights are)."""
        from rltrain.engines.checksum import weights_checksum

        return weights_checksum(self.named_weights())

    # ----- sampling seeds: a counter, checkpointed, that calls with their own seed leave alone ---------
    seed: int = 0
    calls: int = 0

    def next_seed(self, sampling: SamplingConfig) -> int:
        """The call's sampling seed: its own (evaluations pass one, so they never move the counter and
        never change the training trajectory), else one from the engine seed and a call counter."""
        if sampling.seed is not None:
            return sampling.seed
        self.calls += 1
        return self.seed * 1_000_003 + self.calls - 1

    def sampling_state(self) -> dict:
        """What a checkpoint needs to resume sampling exactly (the call counter)."""
        return {"calls": self.calls}

    def load_sampling_state(self, state: dict) -> None:
        self.calls = int(state["calls"])

    def share_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Colocated placement: take the learner's tensors, in the same process, undoing `free_memory`
        if it freed anything. The default restores memory and copies them (`load_weights`); an engine
        that can adopt a tensor's storage does so. Returns the bytes copied."""
        named = list(named_tensors)
        self.restore_memory()  # idempotent: nothing to do unless free_memory freed something
        self.load_weights(named)
        return sum(t.numel() * t.element_size() for _, t in named)

    def free_memory(self) -> bool:
        return False

    def restore_memory(self) -> bool:
        return False


def stop_reason(tokens: list[int], eos_id: int, stop_ids: tuple[int, ...]) -> tuple[int, str]:
    """(length up to and including the first EOS / stop token, reason) of a generated token list."""
    for i, t in enumerate(tokens):
        if t == eos_id:
            return i + 1, "eos"
        if t in stop_ids:
            return i + 1, "stop"
    return len(tokens), "length"
