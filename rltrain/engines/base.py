"""The one small interface every rollout engine implements.

An engine generates n samples per prompt from token ids (token-in/token-out: the trainer never
re-tokenises generated text), returns each sampled token's log-probability under the sampling
distribution, loads weights in buckets, and reports the weight version it generates with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import torch


@dataclass
class SamplingConfig:
    n: int = 1
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    greedy: bool = False


@dataclass
class Sample:
    """One completion: `prompt_index` points into the prompt list given to `generate`."""

    prompt_index: int
    response_ids: list[int]
    logprobs: list[float]  # one per response token, under the sampling distribution
    finished: bool  # stopped on EOS (False = cut at max_new_tokens)
    extra: dict = field(default_factory=dict)


class RolloutEngine(Protocol):
    version: int

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Sample]:
        """n samples per prompt, grouped by prompt in order (prompt 0's n samples first)."""

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load one bucket of (name, tensor) pairs (HF parameter names)."""
