"""pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
Code", eq. 1). Pure math, standard library only.

Draw n samples for a prompt, of which c are correct. The probability that at least one of k samples
drawn without replacement from those n is correct is

    pass@k = 1 - C(n - c, k) / C(n, k)

(1 when fewer than k samples are wrong); averaged over prompts it is an unbiased estimate of the
model's pass@k, with less variance than drawing exactly k samples per prompt. pass@1 = c / n.
"""

from __future__ import annotations

import math

__all__ = ["pass_at_k", "ks_for"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples (drawn from n, c correct) is correct.

    Exact: integer binomials, one rounding at the final division. Raises ValueError when k > n
    (the estimator needs at least k samples) or c is outside 0..n.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"correct count must be in 0..{n}, got {c}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """The k reported for n samples per prompt: 1, 2, 4, ... (powers of two up to 128) not above n."""
    return [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
