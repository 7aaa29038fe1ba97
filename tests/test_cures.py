"""CurES (rltrain/data/cures.py) against numbers computed by hand: draw weights, the Beta posterior under
both priors, the Neyman allocation of a batch's sample budget, epochs, and the state a checkpoint keeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rltrain.data import PromptRow
from rltrain.data.cures import CuresSampler, allocate_samples, sampling_weights


def _rows(n: int) -> list[PromptRow]:
    return [PromptRow(prompt=f"q{i}", answer=str(i), key=f"k{i}") for i in range(n)]


def test_paper_weights_favour_success_rates_near_one_half_and_the_code_form_is_near_uniform():
    p = np.array([0.5, 0.1])  # sigma = 0.5 and 0.3
    w = sampling_weights(p, np.zeros(2), "paper", temperature=0.1)
    assert w[0] / w[1] == pytest.approx(math.exp((0.5 - 0.3) / 0.1))  # e^2
    # the released code: t = (alpha + 1) / 0.01, so exp(0.5 / 100) at most
    w = sampling_weights(p, np.zeros(2), "code", temperature=0.1)
    assert w[0] / w[1] == pytest.approx(math.exp((0.5 - 0.3) * 0.01))
    w = sampling_weights(np.array([1e-9, 0.5]), np.zeros(2), "paper", temperature=1e-3)  # no overflow
    assert np.isfinite(w).all() and w[1] == 1.0


def test_allocation_minimises_the_summed_variance_in_integers():
    # sigma^2 = .25, .09, 0, .16; two each, then 8 more, each where sigma^2 / (n (n+1)) is largest:
    # 0 (.0417), 3 (.0267), 0 (.0208), 1 (.015), 3 (.0133), 0 (.0125), 0 (.0083), 3 (.008)
    assert allocate_samples([0.5, 0.3, 0.0, 0.4], budget=16, n_min=2, n_max=8) == [6, 3, 2, 5]
    assert allocate_samples([0.5] * 4, budget=16, n_min=2, n_max=8) == [4, 4, 4, 4]
    assert allocate_samples([0.5, 0.0], budget=10, n_min=2, n_max=6) == [6, 4]  # the cap holds
    with pytest.raises(ValueError, match="cannot give 3 prompts between 2 and 4"):
        allocate_samples([0.5] * 3, budget=13, n_min=2, n_max=4)


def test_posterior_under_both_priors():
    s = CuresSampler(_rows(4), batch_size=2, prior="uniform")
    s.observe(["k0", "k0", "k0", "nope", "k1"], [1.0, 0.0, 0.0, 1.0, None])  # unknown keys, None: skipped
    mean, sd = s.posterior(np.array([0, 1]))
    assert mean.tolist() == pytest.approx([2 / 5, 1 / 2])  # Beta(1+1, 2+1); unseen Beta(1, 1)
    assert sd[0] == pytest.approx(math.sqrt(2 * 3 / (25 * 6)))
    pooled = CuresSampler(_rows(4), batch_size=2, prior="pooled", prior_strength=2.0)
    pooled.observe(["k0", "k0", "k0"], [1.0, 0.0, 0.0])
    mean, _ = pooled.posterior(np.array([0, 1]))
    # run rate m = (1 + 1) / (3 + 2) = .4 -> prior Beta(.8, 1.2); seen: (1 + .8) / (3 + 2)
    assert mean.tolist() == pytest.approx([1.8 / 5, 0.4])


def test_draws_follow_the_posterior_and_allocation_splits_the_budget():
    s = CuresSampler(_rows(6), batch_size=2, prior="uniform", temperature=0.05, replacement=True, min_samples=2,
                     max_samples=8)
    s.observe(["k0"] * 8 + ["k1"] * 8, [1.0, 0.0] * 4 + [0.0] * 8)  # k0: 4 of 8, k1: 0 of 8
    counts = {k: 0 for k in ("k0", "k1")}
    for _ in range(400):
        for row in s.take(2):
            counts[row.key] = counts.get(row.key, 0) + 1
    assert counts["k0"] > 3 * counts["k1"]  # sigma .5 vs ~.29 at t = .05
    rows = [r for r in _rows(6) if r.key in ("k0", "k1")]
    assert s.allocation(rows, 4) == [5, 3]  # sigmas .5 and sqrt(.1 * .9) = .3 of a budget of 8
    assert s.metrics()["cures/alloc_max"] == 5.0 and 0 < s.metrics()["cures/seen_frac"] <= 1
    assert CuresSampler(_rows(6), 2, allocation=False).allocation(rows, 4) is None


def test_without_replacement_each_prompt_comes_once_per_epoch_and_state_resumes_exactly():
    s = CuresSampler(_rows(7), batch_size=3, seed=5, replacement=False)
    first_epoch = [r.key for _ in range(2) for r in s.take(3)]
    assert len(set(first_epoch)) == 6 and s.epoch == 0
    s.observe(first_epoch, [1.0, 0.0] * 3)
    state = s.state_dict()
    after = [[r.key for r in s.take(3)] for _ in range(3)]  # 1 left each time 6 are drawn: a new epoch
    assert s.epoch == 2 and len(set(after[0] + after[1])) == 6
    again = CuresSampler(_rows(7), batch_size=3, seed=0, replacement=False)
    again.load_state_dict(state)
    assert [[r.key for r in again.take(3)] for _ in range(3)] == after
    with pytest.raises(ValueError, match="other training prompts"):
        CuresSampler(_rows(8), batch_size=3).load_state_dict(state)
    with pytest.raises(ValueError, match="was it saved with data.sampler: uniform"):
        again.load_state_dict({"epoch": 0, "index": 0, "seed": 0})
