"""Noisy-verifier corrections (ALGORITHMS.md §10; arXiv 2510.00915) around a binary reward.

The verifier is a noisy channel on the clean reward R in {0, 1}: ``fp_rate`` = rho0 =
P(R~=1 | R=0) and ``fn_rate`` = rho1 = P(R~=0 | R=1).

- backward: R_hat = (R~ - rho0) / (1 - rho0 - rho1), unbiased: E[R_hat | R] = R.
- forward (needs only rho1): w(R~=1) = rho1, w(R~=0) = rho1 - 1, so E[w | R=1] = 0 and
  E[w | R=0] = -(1 - rho0 - rho1): used as a score-function weight, its expected policy gradient
  is (1 - rho0 - rho1) times the clean one.

Both maps are affine in R~ with a positive scale, so after GRPO's group mean-centring (and std
scaling) they change nothing except through eps; they matter for baseline-free REINFORCE, RLOO
without std scaling, or when used as per-sample weights. In rltrain the forward weight is the
`noisy_forward` advantage stage and a baseline-free estimator is `reinforce` (see algorithms/).

`NoisyChannel` is the other direction, for experiments: it corrupts a binary reward with known rates
(seeded, deterministic in the order of the samples it scores).
"""

from __future__ import annotations

from typing import Any, Callable

import random

__all__ = ["NoisyChannel", "NoisyVerifierCorrection", "backward_correction", "forward_correction"]


def _check(fp_rate: float, fn_rate: float) -> None:
    if not (0.0 <= fp_rate < 1.0 and 0.0 <= fn_rate < 1.0):
        raise ValueError(f"rates must be in [0, 1), got fp_rate={fp_rate}, fn_rate={fn_rate}")
    if fp_rate + fn_rate >= 1.0:
        raise ValueError(f"need fp_rate + fn_rate < 1 (an informative verifier), got {fp_rate + fn_rate}")


def backward_correction(r: float, fp_rate: float, fn_rate: float) -> float:
    """Unbiased reward from a binary noisy reward ``r``."""
    _check(fp_rate, fn_rate)
    return (r - fp_rate) / (1.0 - fp_rate - fn_rate)


def forward_correction(r: float, fn_rate: float) -> float:
    """Score-function weight: ``fn_rate`` when ``r`` is 1, ``fn_rate - 1`` when 0."""
    _check(0.0, fn_rate)
    return fn_rate if r >= 0.5 else fn_rate - 1.0


class _BinaryRewardMap:
    """A reward that maps each score of an inner reward (`self.map`), passing `close` through."""

    reward: Callable[..., list]

    def map(self, r: float | None) -> float | None:
        raise NotImplementedError

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        return [self.map(r) for r in self.reward(prompts, completions, **columns)]

    def close(self) -> None:
        close = getattr(self.reward, "close", None)
        if close:
            close()


class NoisyVerifierCorrection(_BinaryRewardMap):
    """Wrap a binary reward with the backward or forward correction.

    Args:
        reward: the inner reward callable (batch signature); None scores pass through.
        fp_rate: rho0, the verifier's false-positive rate.
        fn_rate: rho1, the verifier's false-negative rate.
        mode: "backward" or "forward".
        threshold: inner scores >= threshold count as 1, below as 0 (binarisation).
    """

    def __init__(self, reward: Callable[..., list], fp_rate: float = 0.0, fn_rate: float = 0.0, mode: str = "backward", threshold: float = 0.5) -> None:
        if mode not in ("backward", "forward"):
            raise ValueError(f"mode must be 'backward' or 'forward', got {mode!r}")
        _check(float(fp_rate), float(fn_rate))
        self.reward = reward
        self.fp_rate = float(fp_rate)
        self.fn_rate = float(fn_rate)
        self.mode = mode
        self.threshold = float(threshold)
        self.__name__ = f"noisy_{mode}({getattr(reward, '__name__', 'reward')})"

    def correct(self, r: float | None) -> float | None:
        """Correct one inner score."""
        if r is None:
            return None
        b = 1.0 if r >= self.threshold else 0.0
        if self.mode == "backward":
            return backward_correction(b, self.fp_rate, self.fn_rate)
        return forward_correction(b, self.fn_rate)

    map = correct

    @property
    def score_range(self) -> tuple[float, float]:
        """The corrected scores of a 0 and a 1, lowest first."""
        a, b = self.correct(0.0), self.correct(1.0)
        return min(a, b), max(a, b)


class NoisyChannel(_BinaryRewardMap):
    """Corrupt a binary reward: a score >= threshold becomes 0 with probability ``fn_rate`` (a false
    negative), a lower one becomes 1 with probability ``fp_rate``; None passes through. The flips come
    from ``random.Random(seed)`` in the order samples are scored."""

    def __init__(self, reward: Callable[..., list], fp_rate: float = 0.0, fn_rate: float = 0.0, seed: int = 0,
                 threshold: float = 0.5) -> None:
        _check(float(fp_rate), float(fn_rate))
        self.reward, self.fp_rate, self.fn_rate, self.threshold = reward, float(fp_rate), float(fn_rate), float(threshold)
        self.rng = random.Random(seed)
        self.__name__ = f"noisy_channel({getattr(reward, '__name__', 'reward')})"

    def corrupt(self, r: float | None) -> float | None:
        if r is None:
            return None
        if r >= self.threshold:
            return 0.0 if self.rng.random() < self.fn_rate else 1.0
        return 1.0 if self.rng.random() < self.fp_rate else 0.0

    map = corrupt
    score_range = (0.0, 1.0)
