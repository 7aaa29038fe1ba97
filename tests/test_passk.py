"""rltrain.data.passk: the unbiased pass@k estimator (Chen et al. 2021, eq. 1), by hand and by brute force."""

from __future__ import annotations

import itertools

import pytest

from rltrain.data.passk import ks_for, pass_at_k


def test_pass_at_k_by_hand():
    # n=4 samples, c=1 correct: 1 - C(3,k)/C(4,k)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)  # 1 - 3/4
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - 3/6
    assert pass_at_k(4, 1, 3) == pytest.approx(0.75)  # 1 - 1/4
    assert pass_at_k(4, 1, 4) == 1.0  # n - c = 3 < k = 4: every 4-subset holds the correct one
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)  # pass@1 = c / n
    assert pass_at_k(64, 1, 32) == pytest.approx(0.5)  # C(63,32)/C(64,32) = 32/64
    assert pass_at_k(128, 1, 1) == pytest.approx(1 / 128)


def test_pass_at_k_edges():
    assert pass_at_k(8, 0, 1) == 0.0 and pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0 and pass_at_k(4, 3, 2) == 1.0  # n - c = 1 < k = 2
    with pytest.raises(ValueError, match="pass@4 needs at least 4 samples"):
        pass_at_k(2, 1, 4)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, -1, 1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_pass_at_k_equals_the_share_of_k_subsets_with_a_correct_sample(n):
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_monotone_in_k_and_c():
    n = 16
    for c in range(n + 1):
        vals = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert vals == sorted(vals)
    for k in (1, 4, 16):
        vals = [pass_at_k(n, c, k) for c in range(n + 1)]
        assert vals == sorted(vals)


def test_ks_for():
    assert ks_for(1) == [1]
    assert ks_for(3) == [1, 2]
    assert ks_for(16) == [1, 2, 4, 8, 16]
    assert ks_for(1000) == [1, 2, 4, 8, 16, 32, 64, 128]
