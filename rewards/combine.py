"""Weighted sums of rewards: ``combine([(math, 1.0), (format, 0.2)])``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

__all__ = ["Combined", "combine"]

_MISSING = ("skip", "none", "zero")


class Combined:
    """sum_k w_k * r_k per sample.

    ``missing`` says what a None from one part does: "skip" (leave that part out, as TRL's
    nansum does; None only when every part is None), "none" (the sample gets None) or "zero".
    ``last_parts`` holds each part's scores from the latest call, for per-part metrics.
    ``score_range`` is the weighted sum of the parts' ranges (None when a part has none).
    """

    def __init__(self, parts: Sequence[tuple[Callable[..., list], float]], missing: str = "skip") -> None:
        if not parts:
            raise ValueError("combine needs at least one (reward, weight) pair")
        if missing not in _MISSING:
            raise ValueError(f"missing must be one of {_MISSING}, got {missing!r}")
        self.parts = [(fn, float(w)) for fn, w in parts]
        self.missing = missing
        self.__name__ = "+".join(f"{w:g}*{getattr(fn, '__name__', 'reward')}" for fn, w in self.parts)
        self.last_parts: dict[str, list[float | None]] = {}

    @property
    def score_range(self) -> tuple[float, float] | None:
        lo = hi = 0.0
        for fn, w in self.parts:
            part = getattr(fn, "score_range", None)
            if part is None:
                return None
            a, b = (0.0, 0.0) if w == 0 else sorted((w * part[0], w * part[1]))
            if self.missing != "none":  # a part's None leaves it out ("skip") or counts 0 ("zero")
                a, b = min(a, 0.0), max(b, 0.0)
            lo, hi = lo + a, hi + b
        return lo, hi

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        scores = []
        self.last_parts = {}
        for k, (fn, _) in enumerate(self.parts):
            out = list(fn(prompts, completions, **columns))
            if len(out) != n:
                raise ValueError(f"part {getattr(fn, '__name__', k)!r} returned {len(out)} scores for {n} samples")
            scores.append(out)
            self.last_parts[f"{k}:{getattr(fn, '__name__', 'reward')}"] = out
        total: list[float | None] = []
        for i in range(n):
            acc, seen, drop = 0.0, False, False
            for (fn, w), out in zip(self.parts, scores):
                r = out[i]
                if r is None:
                    if self.missing == "none":
                        drop = True
                    elif self.missing == "zero":
                        seen = True
                    continue
                acc += w * float(r)
                seen = True
            total.append(None if drop or not seen else acc)
        return total

    def close(self) -> None:
        for fn, _ in self.parts:
            close = getattr(fn, "close", None)
            if close:
                close()


def combine(parts: Sequence[tuple[Callable[..., list], float]], missing: str = "skip") -> "Combined":
    """Weighted combination of reward callables (each already guarded or plain)."""
    return Combined(parts, missing=missing)
