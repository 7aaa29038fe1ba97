"""Every reward declares its range; the guard drops, logs and counts a score outside it."""

import logging

import pytest

import rewards


# module-level so that "process" isolation can pickle them
def forged_code_score(prompts, completions, **kw):
    """What the forged code verdict of issue #34 looked like: 10 passes counted for 3 tests."""
    return [10 / 3 if c == "forged" else 1 / 3 for c in completions]


forged_code_score.score_range = (0.0, 1.0)


def unbounded(prompts, completions, **kw):
    return [1e6 for _ in completions]


@pytest.mark.parametrize("isolation", ["process", "thread", "inline"])
def test_a_score_above_the_declared_range_is_dropped_logged_and_counted(isolation, caplog):
    r = rewards.load(forged_code_score, isolation=isolation, workers=1)
    try:
        with caplog.at_level(logging.WARNING, logger="rewards"):
            assert r(None, ["honest", "forged", "honest"]) == [pytest.approx(1 / 3), None, pytest.approx(1 / 3)]
        assert r.stats["out_of_range"] == 1 and r.stats["errors"] == 0
        assert "sample 1 scored 3.33333, outside its range [0, 1]; scored None" in caplog.text
    finally:
        r.close()


def test_fallback_replaces_an_out_of_range_score_and_widens_the_range():
    r = rewards.load(forged_code_score, isolation="inline", fallback=-1.0)
    assert r(None, ["forged"]) == [-1.0]
    assert r.score_range == (-1.0, 1.0)


def test_range_given_to_load_or_register_and_unbounded_by_default():
    assert rewards.load(unbounded, isolation="inline")(None, ["a"]) == [1e6]  # no declared range: kept
    r = rewards.load(unbounded, isolation="inline", score_range=[0, 10])
    assert r(None, ["a"]) == [None] and r.stats["out_of_range"] == 1
    rewards.register("test_unbounded_0_1", unbounded, isolation="inline", score_range=(0, 1))
    assert rewards.load("test_unbounded_0_1")(None, ["a"]) == [None]


def test_builtin_rewards_declare_their_ranges():
    assert rewards.load("math").score_range == (0.0, 1.0)
    assert rewards.load("exact_match").score_range == (0.0, 1.0)
    assert rewards.load("code").score_range == (0.0, 1.0)
    assert rewards.load("format", score_match=2.0, score_miss=-1.0).score_range == (-1.0, 2.0)
    assert rewards.load("overlong", max_length=8, cache_length=4).score_range == (-1.0, 0.0)
    # (0.9 - 0) / (1 - 0.1 - 0.2) and (0 - 0.1) / 0.7
    assert rewards.load("noisy", reward="exact_match", fp_rate=0.1, fn_rate=0.2).score_range == pytest.approx((-1 / 7, 9 / 7))
    assert rewards.load("noisy", reward="exact_match", fn_rate=0.2, mode="forward").score_range == pytest.approx((-0.8, 0.2))
    assert rewards.load("noisy_channel", reward="exact_match", fp_rate=0.1).score_range == (0.0, 1.0)
    assert rewards.load(unbounded).score_range is None


def test_a_combination_spans_its_parts_weighted_ranges():
    combo = rewards.from_config([{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.5}])
    assert combo.score_range == (0.0, 1.5)
    # -1 * [0, 1] = [-1, 0]; 2 * [-1, 0] = [-2, 0]
    neg = rewards.from_config([{"name": "exact_match", "weight": -1.0},
                               {"name": "overlong", "weight": 2.0, "max_length": 8, "cache_length": 4}])
    assert neg.score_range == (-3.0, 0.0)
    # a part left out ("skip") adds 0: [1, 2] * 1 + [3, 4] * 1 spans [0, 6], not [4, 6]
    a = rewards.load(unbounded, isolation="inline", score_range=(1, 2))
    b = rewards.load(unbounded, isolation="inline", score_range=(3, 4))
    assert rewards.combine([(a, 1.0), (b, 1.0)]).score_range == (0.0, 6.0)
    assert rewards.combine([(a, 1.0), (b, 1.0)], missing="none").score_range == (4.0, 6.0)
    assert rewards.combine([(a, 1.0), (rewards.load(unbounded), 1.0)]).score_range is None


@pytest.mark.parametrize("bad", [(1, 0), (0,), "01", (0, float("nan")), (True, 2)])
def test_a_malformed_range_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match=r"score_range must be \(low, high\)"):
        rewards.load(unbounded, score_range=bad)
