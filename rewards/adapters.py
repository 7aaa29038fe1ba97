"""Adapters from the batch signature to verl's ``compute_score`` and to one-sample calls.

verl (``custom_reward_function.path=<this file>``, ``name=verl_compute_score``,
``reward_kwargs.reward=math``) calls ``compute_score(data_source, solution_str, ground_truth,
extra_info)`` once per sample; its batch reward manager calls the plural form.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

__all__ = ["to_single", "to_verl", "to_verl_batch", "verl_compute_score"]


def to_single(fn: Callable[..., list]) -> Callable[..., float | None]:
    """``score(completion, prompt=None, **columns) -> float | None`` for one sample."""

    def score(completion: Any, prompt: Any = None, **columns: Any) -> float | None:
        return list(fn([prompt], [completion], **{k: [v] for k, v in columns.items()}))[0]

    score.__name__ = getattr(fn, "__name__", "reward")
    return score


def _columns(data_source: Any, ground_truth: Any, extra_info: Any, answer_column: str) -> tuple[Any, dict[str, Any]]:
    cols: dict[str, Any] = {}
    if isinstance(extra_info, dict):
        cols.update(extra_info)
    cols[answer_column] = ground_truth
    cols["data_source"] = data_source
    prompt = cols.pop("prompt", None) or cols.get("question")
    return prompt, cols


def to_verl(fn: Callable[..., list], default: float = 0.0, answer_column: str = "answer") -> Callable[..., float]:
    """verl's ``compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float``.

    ``ground_truth`` becomes the ``answer_column`` column; ``extra_info`` entries become columns
    (its ``prompt`` or ``question`` the prompt). None (no score) becomes ``default``.
    """

    def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, **_: Any) -> float:
        prompt, cols = _columns(data_source, ground_truth, extra_info, answer_column)
        r = list(fn([prompt], [solution_str], **{k: [v] for k, v in cols.items()}))[0]
        return default if r is None else float(r)

    compute_score.__name__ = "compute_score"
    return compute_score


def to_verl_batch(fn: Callable[..., list], default: float = 0.0, answer_column: str = "answer") -> Callable[..., list[float]]:
    """verl's batch form ``compute_score(data_sources, solution_strs, ground_truths, extra_infos)``."""

    def compute_score(data_sources: list, solution_strs: list, ground_truths: list, extra_infos: list | None = None, **_: Any) -> list[float]:
        n = len(solution_strs)
        infos = extra_infos if extra_infos is not None else [None] * n
        rows = [_columns(d, g, e, answer_column) for d, g, e in zip(data_sources, ground_truths, infos)]
        keys = sorted({k for _, c in rows for k in c})
        cols = {k: [c.get(k) for _, c in rows] for k in keys}
        out = fn([p for p, _ in rows], list(solution_strs), **cols)
        return [default if r is None else float(r) for r in out]

    compute_score.__name__ = "compute_score"
    return compute_score


@functools.lru_cache(maxsize=32)
def _cached(reward: str, params_json: str) -> Callable[..., float]:
    from rewards.registry import load  # absolute: verl loads this file by path, outside the package

    return to_verl(load(reward, **json.loads(params_json)))


def verl_compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, reward: str = "math", **params: Any) -> float:
    """Ready-made verl entry point; ``reward`` and ``params`` come from verl's ``reward_kwargs``.
    The loaded reward is cached per (reward, params)."""
    return _cached(reward, json.dumps(params, sort_keys=True))(data_source, solution_str, ground_truth, extra_info)
