"""The guard: raising, hanging, crashing and ill-typed rewards never reach the caller."""

import logging
import os
import time

import pytest

import rewards


# module-level so that "process" isolation can pickle them
def raises_on_bad(prompts, completions, **kw):
    out = []
    for c in completions:
        if c == "bad":
            raise ValueError("cannot score this")
        out.append(1.0)
    return out


def hangs_on_slow(prompts, completions, **kw):
    for c in completions:
        if c == "slow":
            time.sleep(8)  # an abandoned thread finishes by itself later (no CPU burnt meanwhile)
    return [1.0] * len(completions)


def holds_gil_on_huge(prompts, completions, **kw):
    for c in completions:
        if c == "huge":
            10 ** (10 ** 9)  # one C-level big-int power: holds the GIL, ignores signals
    return [1.0] * len(completions)


def crashes_on_exit(prompts, completions, **kw):
    if completions[0] == "exit":
        os._exit(3)
    return [1.0]


def bad_values(prompts, completions, **kw):
    table = {"str": "high", "nan": float("nan"), "inf": float("inf"), "-inf": -float("inf"), "list": [1.0],
             "bool": True, "int": 2}
    return [table[c] for c in completions]


def wrong_length(prompts, completions, **kw):
    return [1.0, 1.0, 1.0]


def echo_columns(prompts, completions, answer=None, trainer_state=None, **kw):
    return [float(a == c) + (0.5 if trainer_state == "state" else 0.0) for a, c in zip(answer, completions)]


@pytest.mark.parametrize("isolation", ["process", "thread", "inline"])
def test_exception_is_logged_and_scored_as_fallback(isolation, caplog):
    r = rewards.load(raises_on_bad, isolation=isolation, fallback=-1.0, workers=1)
    try:
        with caplog.at_level(logging.WARNING, logger="rewards"):
            out = r(["p"] * 3, ["ok", "bad", "ok"])
        assert out == [1.0, -1.0, 1.0]
        assert "sample 1" in caplog.text and "ValueError" in caplog.text
        assert r.stats["errors"] == 1
    finally:
        r.close()


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_hang_is_cut_off_per_sample(isolation, caplog):
    r = rewards.load(hangs_on_slow, isolation=isolation, timeout_s=0.5, workers=2)
    try:
        r(["p"], ["ok"])  # start the workers before timing
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="rewards"):
            out = r(["p"] * 4, ["ok", "slow", "ok", "ok"])
        assert out == [1.0, None, 1.0, 1.0]
        assert time.monotonic() - t0 < 5
        assert "sample 1 timed out" in caplog.text
        assert r.stats["timeouts"] == 1
    finally:
        r.close()


def test_gil_holding_hang_is_killed_in_process_mode():
    r = rewards.load(holds_gil_on_huge, isolation="process", timeout_s=1.0, workers=1)
    try:
        r(["p"], ["ok"])
        t0 = time.monotonic()
        assert r(["p"] * 2, ["huge", "ok"]) == [None, 1.0]
        assert time.monotonic() - t0 < 10  # includes starting a replacement worker
    finally:
        r.close()


def test_worker_crash_is_a_fallback_not_an_exception():
    r = rewards.load(crashes_on_exit, isolation="process", workers=1, fallback=0.0)
    try:
        assert r(["p"] * 3, ["ok", "exit", "ok"]) == [1.0, 0.0, 1.0]
    finally:
        r.close()


def test_bad_return_values():
    r = rewards.load(bad_values, isolation="inline")
    assert r(None, ["str", "nan", "inf", "-inf", "bool", "int"]) == [None, None, None, None, 1.0, 2.0]
    assert r(None, ["list"]) == [None]
    w = rewards.load(wrong_length, isolation="inline", fallback=0.0)
    assert w(None, ["a", "b"]) == [0.0, 0.0]


def test_columns_and_shared_arguments_reach_the_reward():
    for iso in ("inline", "thread", "process"):
        r = rewards.load(echo_columns, isolation=iso, workers=1)
        try:
            out = r(["p", "p"], ["x", "y"], answer=["x", "z"], trainer_state="state", log_metric=lambda *a: None)
            assert out == [1.5, 0.5], iso
        finally:
            r.close()


def test_unpicklable_reward_falls_back_to_threads():
    r = rewards.load(lambda p, c, **k: [2.0] * len(c), isolation="process")
    assert r(None, ["a", "b"]) == [2.0, 2.0]
    assert r.isolation == "thread"


def test_bad_calls_do_not_raise():
    r = rewards.load("exact_match")
    assert r(None, []) == []
    assert r(["p"], ["#### 1", "#### 2"], answer=["1", "2"]) == [1.0, 1.0]  # mismatched prompts ignored
    assert r(None, ["#### 1"], answer=[object()]) == [0.0]


def test_guard_option_validation():
    with pytest.raises(ValueError):
        rewards.load("math", isolation="docker")
    with pytest.raises(ValueError):
        rewards.load("math", timeout_s=0)
    assert rewards.GUARD_OPTIONS == ("timeout_s", "fallback", "isolation", "workers", "worker_memory_mb", "score_range")
