"""Evaluation: pass@k on held-out prompts with the unbiased estimator (Chen et al. 2021, eq. 1).

pass@k = E_prompts[1 - C(n-c, k) / C(n, k)] for n samples per prompt of which c are correct.
"""

from __future__ import annotations

from rltrain.data import PromptRow
from rltrain.data.passk import ks_for, pass_at_k
from rltrain.engines.base import SamplingConfig


def evaluate(rollout, rows: list[PromptRow], n: int, temperature: float, max_new_tokens: int,
             threshold: float = 1.0, seed: int = 1234, greedy: bool = False) -> dict[str, float]:
    """Sample n completions per row; a completion is correct when its reward >= threshold. With
    `greedy`, also one greedy completion per row (`eval/greedy_pass@1`)."""
    out = {}
    if greedy:
        records = rollout.generate(rows, SamplingConfig(n=1, max_new_tokens=max_new_tokens, greedy=True))
        rollout.score(records)
        out["eval/greedy_pass@1"] = sum(r.reward is not None and r.reward >= threshold for r in records) / max(
            1, len(records))
    sampling = SamplingConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    records = rollout.generate(rows, sampling)
    rollout.score(records)
    correct: dict[int, int] = {}
    for r in records:
        correct[r.group] = correct.get(r.group, 0) + int(r.reward is not None and r.reward >= threshold)
    for k in ks_for(n):
        out[f"eval/pass@{k}"] = sum(pass_at_k(n, c, k) for c in correct.values()) / max(1, len(correct))
    out["eval/response_length_mean"] = sum(len(r.response_ids) for r in records) / max(1, len(records))
    return out
