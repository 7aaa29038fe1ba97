"""Seeds and confidence for the learning benchmarks: mean and 95% interval over seeds, paired differences,
and the verdict a table states.

A learning figure is a draw; over k seeds its mean comes with the two-sided 95% Student-t interval
mean +- t(0.975, k-1) * sd / sqrt(k) (sd with k-1 in the denominator). A comparison of two variants run
on the same seeds is the interval of the per-seed differences (paired), which removes what a seed does
to both. A claim "A > B" holds when that interval lies above 0, does not hold when it lies below 0, and
is inconclusive when it contains 0. A claim "A is no worse than B" (non-inferiority within a margin m)
holds when the interval of A - B lies above -m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["T975", "mean_ci", "paired_ci", "verdict", "noninferior_verdict", "fmt_ci"]

# two-sided 95% Student-t quantiles t(0.975, df), df = 1..30 (then the normal 1.96 is within 4%)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values: Sequence[float]) -> dict:
    """{"n", "mean", "sd", "ci95": [lo, hi]} over the values (one per seed); one value has no interval."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "ci95": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def paired_ci(a: Sequence[float], b: Sequence[float]) -> dict:
    """`mean_ci` of a[i] - b[i] (the same seed i for both)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds: {len(a)} vs {len(b)}")
    return mean_ci([x - y for x, y in zip(a, b)])


def verdict(ci: Sequence[float] | None) -> str:
    """"holds" (interval above 0), "does not hold" (below 0), "inconclusive" (contains 0, or no interval)."""
    if ci is None:
        return "inconclusive"
    lo, hi = ci
    return "holds" if lo > 0 else "does not hold" if hi < 0 else "inconclusive"


def noninferior_verdict(ci: Sequence[float] | None, margin: float) -> str:
    """For a claim "A is no worse than B" (A - B >= -margin): "holds" when the interval of A - B lies above
    -margin, "does not hold" when it lies below, "inconclusive" otherwise."""
    return verdict(None if ci is None else [ci[0] + margin, ci[1] + margin])


def fmt_ci(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    """"mean [lo, hi]" (scaled, e.g. by 100 for points)."""
    if stat["ci95"] is None:
        return f"{stat['mean'] * scale:.{digits}f}"
    lo, hi = stat["ci95"]
    return f"{stat['mean'] * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
