"""CurES prompt sampling and rollout allocation (Zeng et al., arXiv 2510.01037; code ZexuSun/CurES).

Each training prompt x has a Beta posterior over its success rate p_x, updated from every rollout of it
(`observe`): alpha = successes (reward > `correct_threshold`), beta = failures, on top of a prior.

- Prompt sampling: weights w_x = exp(sigma_x / t) with sigma_x = sqrt(p_x (1 - p_x)), p_x the posterior
  mean, so prompts whose success rate is nearest 1/2 (the largest variance of a binary reward, the most
  gradient signal under group-relative advantages) are drawn most. `form`:
    - "paper": one temperature t = `temperature` for every prompt (the paper's softmax over sigma);
    - "code": t_x = (alpha_x + 1) / 0.01 per prompt, as the released EpicSampler computes it; the exponent
      is then at most 0.005, so its draws are uniform to within 0.5% (offered to reproduce the code).
  `replacement: false` draws each batch without replacement from the prompts not yet drawn this epoch
  (the code's order; a new epoch starts when fewer than a batch remain); `true` draws every batch from
  the whole pool, so a prompt can come back as soon as its posterior says it is worth it.
- Rollout allocation (`allocation: true`): a batch's budget of len(batch) x rollout.n_samples samples is
  split so as to minimise sum_x sigma_x^2 / n_x (the variance of the batch's gradient estimate when each
  prompt's per-sample gradient norms are equal), i.e. n_x proportional to sigma_x (Neyman allocation),
  in integers between `min_samples` and `max_samples`. The paper's rule (its eq. for sigma_x, the code's
  "eq. 127") also weighs sigma_x by the norms of per-sample log-likelihood gradients of correct and wrong
  answers, measured once before training; rltrain uses the equal-norm case, which needs no gradients.
- Prior (`prior`): "uniform" is Beta(1, 1) (paper and code: p = (alpha + 1) / (n + 2)); an unseen prompt
  then has p = 1/2, the largest weight, so the sampler prefers unseen prompts to seen ones. "pooled" is
  Beta(m k, (1 - m) k) with m the success rate of every rollout observed so far and k = `prior_strength`:
  an unseen prompt is expected to be as hard as the data has been, and a prompt seen to have both right
  and wrong answers outranks it.

The sampler is a `PromptSampler` (same `take`, epochs and seed); its state (counts, draw order, random
generator) is in the checkpoint, so a resumed run draws exactly what the uninterrupted one would.
Metrics `cures/*`: the drawn batch's posterior mean and spread, the share of it seen before, the pool's
success rate, the largest draw probability relative to uniform, and the allocation's range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rltrain.data.datasets import PromptRow
from rltrain.data.sampler import PromptSampler

__all__ = ["CuresSampler", "allocate_samples", "sampling_weights"]

CODE_TEMPERATURE_SCALE = 1e-2  # EpicSampler: t = (alpha + 1) / 1e-2


def sampling_weights(p: np.ndarray, successes: np.ndarray, form: str, temperature: float) -> np.ndarray:
    """Unnormalised draw weights exp(sqrt(p (1 - p)) / t) (module docstring: `form` paper or code)."""
    sigma = np.sqrt(p * (1.0 - p))
    t = temperature if form == "paper" else (successes + 1.0) / CODE_TEMPERATURE_SCALE
    z = sigma / t
    return np.exp(z - z.max())  # the same distribution, without overflow at small temperatures


def allocate_samples(sigma: Sequence[float], budget: int, n_min: int, n_max: int) -> list[int]:
    """Integers n_x in [n_min, n_max] summing to `budget` that minimise sum sigma_x^2 / n_x: each sample
    after the n_min each goes where it lowers that sum most (sigma^2 / (n (n + 1))), ties to the lower
    index. Equal sigmas give an even split."""
    k = len(sigma)
    if not n_min * k <= budget <= n_max * k:
        raise ValueError(f"a budget of {budget} samples cannot give {k} prompts between {n_min} and {n_max} each")
    n = [n_min] * k
    var = [float(s) ** 2 for s in sigma]
    for _ in range(budget - n_min * k):
        gains = [var[i] / (n[i] * (n[i] + 1)) if n[i] < n_max else -1.0 for i in range(k)]
        best = max(range(k), key=lambda i: (gains[i], -n[i], -i))
        n[best] += 1
    return n


class CuresSampler(PromptSampler):
    """A `PromptSampler` that draws by CurES weights and allocates rollouts (module docstring)."""

    def __init__(self, rows: Sequence[PromptRow], batch_size: int, seed: int = 0, *, form: str = "paper",
                 temperature: float = 0.1, prior: str = "uniform", prior_strength: float = 2.0,
                 replacement: bool = False, allocation: bool = True, min_samples: int = 2, max_samples: int = 16,
                 correct_threshold: float = 0.5) -> None:
        super().__init__(rows, batch_size, seed=seed, shuffle=True, drop_last=True)
        self.form, self.temperature, self.prior, self.prior_strength = form, temperature, prior, prior_strength
        self.replacement, self.use_allocation = replacement, allocation
        self.min_samples, self.max_samples, self.correct_threshold = min_samples, max_samples, correct_threshold
        self.position = {row.key: i for i, row in enumerate(self.rows)}
        self.successes = np.zeros(len(self.rows))
        self.trials = np.zeros(len(self.rows))
        self.remaining = np.ones(len(self.rows), dtype=bool)  # not yet drawn this epoch (replacement: false)
        self.rng = np.random.default_rng([self.seed, 0xC0E5])
        self._last: dict[str, float] = {}

    # ----- the posterior ----------------------------------------------------------------------
    def _prior(self) -> tuple[float, float]:
        if self.prior == "uniform":
            return 1.0, 1.0
        m = (self.successes.sum() + 1.0) / (self.trials.sum() + 2.0)
        return m * self.prior_strength, (1.0 - m) * self.prior_strength

    def posterior(self, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) of the Beta posterior of the rows `idx` (default: all)."""
        a0, b0 = self._prior()
        s, n = (self.successes, self.trials) if idx is None else (self.successes[idx], self.trials[idx])
        a, b = s + a0, n - s + b0
        mean = a / (a + b)
        return mean, np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))

    def observe(self, keys: Sequence[str], rewards: Sequence[float | None]) -> None:
        for key, reward in zip(keys, rewards):
            i = self.position.get(key)
            if i is None or reward is None:
                continue
            self.trials[i] += 1
            self.successes[i] += float(reward > self.correct_threshold)

    # ----- drawing ----------------------------------------------------------------------------
    def take(self, n: int) -> list[PromptRow]:
        if n > len(self.rows):
            raise ValueError(f"cannot draw {n} distinct prompts from {len(self.rows)}")
        if not self.replacement and self.remaining.sum() < n:
            self.remaining[:] = True
            self._epoch, self._index = self._epoch + 1, 0
        pool = np.flatnonzero(self.remaining) if not self.replacement else np.arange(len(self.rows))
        mean, _ = self.posterior(pool)
        w = sampling_weights(mean, self.successes[pool], self.form, self.temperature)
        probs = w / w.sum()
        chosen = self.rng.choice(pool, size=n, replace=False, p=probs)
        if not self.replacement:
            self.remaining[chosen] = False
            self._index = int((~self.remaining).sum())  # drawn this epoch
        self._last = self._draw_metrics(chosen, float(probs.max()) * len(pool))
        return [self.rows[i] for i in chosen]

    def next_batch(self) -> list[PromptRow]:
        return self.take(self.batch_size)

    def allocation(self, rows: Sequence[PromptRow], n: int) -> list[int] | None:
        """Samples per row from a budget of len(rows) x n (None when allocation is off)."""
        if not self.use_allocation:
            return None
        idx = np.array([self.position.get(r.key, -1) for r in rows])
        mean, _ = self.posterior(np.where(idx >= 0, idx, 0))
        sigma = np.where(idx >= 0, np.sqrt(mean * (1.0 - mean)), 0.5)
        ns = allocate_samples(sigma.tolist(), len(rows) * n, min(self.min_samples, n), max(self.max_samples, n))
        self._last.update({"cures/alloc_min": float(min(ns)), "cures/alloc_max": float(max(ns)),
                           "cures/alloc_std": float(np.std(ns))})
        return ns

    def _draw_metrics(self, chosen: np.ndarray, max_prob_ratio: float) -> dict[str, float]:
        mean, sd = self.posterior(chosen)
        return {"cures/p_mean": float(mean.mean()), "cures/p_sd_mean": float(sd.mean()),
                "cures/sigma_mean": float(np.sqrt(mean * (1 - mean)).mean()),
                "cures/seen_frac": float((self.trials[chosen] > 0).mean()),
                "cures/pool_success_rate": float(self.successes.sum() / max(1.0, self.trials.sum())),
                "cures/max_prob_vs_uniform": max_prob_ratio}

    def metrics(self) -> dict[str, float]:
        return dict(self._last)

    # ----- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "successes": self.successes.tolist(), "trials": self.trials.tolist(),
                "remaining": np.flatnonzero(self.remaining).tolist(), "rng": self.rng.bit_generator.state,
                "keys_hash": _keys_hash(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"successes", "trials", "remaining", "rng", "keys_hash"} - set(state)
        if missing:
            raise ValueError(f"data.sampler is cures but the checkpoint's sampler state has no {sorted(missing)} "
                             "(was it saved with data.sampler: uniform?)")
        if state["keys_hash"] != _keys_hash(self.rows):
            raise ValueError("the checkpoint's CurES posteriors belong to other training prompts than this run's")
        super().load_state_dict(state)
        self.successes = np.array(state["successes"], dtype=float)
        self.trials = np.array(state["trials"], dtype=float)
        self.remaining[:] = False
        self.remaining[np.array(state["remaining"], dtype=int)] = True
        self.rng.bit_generator.state = state["rng"]


def _keys_hash(rows: Sequence[PromptRow]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(r.key for r in rows).encode()).hexdigest()[:16]

