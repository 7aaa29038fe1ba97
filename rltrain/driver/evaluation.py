"""Evaluation: pass@k on held-out prompts with the unbiased estimator (Chen et al. 2021, eq. 1).

pass@k = E_prompts[1 - C(n-c, k) / C(n, k)] for n samples per prompt of which c are correct.
"""

from __future__ import annotations

import math

from rltrain.data import PromptRow
from rltrain.engines.base import SamplingConfig


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples (drawn from n, c correct) is correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n samples."""
    return [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]


def evaluate(rollout, rows: list[PromptRow], n: int, temperature: float, max_new_tokens: int,
             threshold: float = 1.0, seed: int = 1234) -> dict[str, float]:
    """Sample n completions per row; a completion is correct when its reward >= threshold."""
    sampling = SamplingConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    records = rollout.generate(rows, sampling)
    rollout.score(records)
    correct: dict[int, int] = {}
    for r in records:
        correct[r.group] = correct.get(r.group, 0) + int(r.reward is not None and r.reward >= threshold)
    out = {}
    for k in ks_for(n):
        out[f"eval/pass@{k}"] = sum(pass_at_k(n, c, k) for c in correct.values()) / max(1, len(correct))
    out["eval/response_length_mean"] = sum(len(r.response_ids) for r in records) / max(1, len(records))
    return out
