"""A reward that misbehaves for bench_faults.py: NaN, inf or an exception for some completions (picked
by their text, so a batch call and a per-sample retry agree)."""

import math


def sometimes_bad(prompts, completions, **kwargs):
    out = []
    for c in completions:
        kind = sum(map(ord, str(c))) % 7
        if kind == 3:
            raise ValueError("this reward raises for some completions")
        out.append(math.nan if kind == 1 else (math.inf if kind == 5 else 0.0))
    return out
