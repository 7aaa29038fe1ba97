"""launch/bench/stats.py: the interval every learning table reports, against hand computation."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch" / "bench"))
from stats import mean_ci, noninferior_verdict, paired_ci, verdict  # noqa: E402


def test_mean_and_t_interval_over_three_seeds():
    # 0.1, 0.2, 0.3: mean .2, sd .1, half-width t(.975, 2) * .1 / sqrt(3) = 4.303 * .057735 = .24843
    s = mean_ci([0.1, 0.2, 0.3])
    assert s["mean"] == pytest.approx(0.2) and s["sd"] == pytest.approx(0.1)
    assert s["ci95"] == pytest.approx([0.2 - 0.24843, 0.2 + 0.24843], abs=1e-5)
    assert mean_ci([0.5]) == {"n": 1, "mean": 0.5, "sd": None, "ci95": None}


def test_paired_differences_and_verdicts():
    # differences .1, .2, .15: mean .15, sd .05, half 4.303 * .05 / sqrt(3) = .12422 -> [.0258, .2742]
    d = paired_ci([0.3, 0.5, 0.4], [0.2, 0.3, 0.25])
    assert d["ci95"] == pytest.approx([0.15 - 0.124217, 0.15 + 0.124217], abs=1e-5)
    assert verdict(d["ci95"]) == "holds" and verdict([-0.3, -0.1]) == "does not hold"
    assert verdict([-0.1, 0.2]) == "inconclusive" and verdict(None) == "inconclusive"
    assert math.isclose(4.303 * 0.05 / math.sqrt(3), 0.124217, rel_tol=1e-4)
    with pytest.raises(ValueError):
        paired_ci([1.0], [1.0, 2.0])


def test_noninferiority_verdict_within_a_margin():
    # A - B in [-0.02, 0.01] with margin 0.03: above -0.03 -> holds; [-0.05, -0.04]: below -> does not hold
    assert noninferior_verdict([-0.02, 0.01], 0.03) == "holds"
    assert noninferior_verdict([-0.05, -0.04], 0.03) == "does not hold"
    assert noninferior_verdict([-0.05, 0.01], 0.03) == "inconclusive"
    assert verdict([-0.02, 0.01]) == "inconclusive"  # the same interval says nothing for "A > B"
    assert noninferior_verdict(None, 0.03) == "inconclusive"
