"""exact_match, format, overlong, combine, noisy corrections, registry and adapters."""

import pytest

import rewards
from rewards.exact_match import normalize_answer
from rewards.overlong import soft_overlong_penalty


@pytest.mark.parametrize("a,b", [("1,000", "1000"), ("5.0", "5"), ("$\\text{Paris}$", "paris"), ("\\boxed{42}", "42."), ("  a   b ", "a b"), ("-0.0", "0"),
                                 ("\\$18.90", "18.90"), ("\\$1,250", "$1250$")])
def test_normalize_answer(a, b):
    assert normalize_answer(a) == normalize_answer(b)


def test_exact_match():
    em = rewards.load("exact_match")
    comps = ["I think \\boxed{Paris}", "<answer> 1,000 </answer>", "#### 7", "The answer is: Berlin", "", None, 12]
    golds = ["paris", "1000", "8", ["berlin", "bonn"], "x", "x", "12"]
    assert em([None] * 7, comps, answer=golds) == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_format():
    fmt = rewards.load("format", isolation="inline")
    comps = ["<think>hmm</think>\n<answer>4</answer>", "<answer>4</answer>", "<think>x</think><answer>4</answer> extra", ""]
    assert fmt(None, comps) == [1.0, 0.0, 0.0, 0.0]
    # tags without content are not the layout asked for (the reward-hacking corpus's empty tags)
    empty = ["<think></think><answer></answer>", "<think> \n</think>\n<answer>\t</answer>",
             "<think>a</think><answer> </answer>", "<think></think><answer>4</answer>", "<think>\n.\n</think> <answer> 4 </answer>"]
    assert fmt(None, empty) == [0.0, 0.0, 0.0, 0.0, 1.0]
    search = rewards.load("format", pattern=r"\\boxed\{", mode="search", isolation="inline")
    assert search(None, ["so \\boxed{2}", "2"]) == [1.0, 0.0]
    with pytest.raises(ValueError):
        rewards.load("format", mode="prefix")


def test_format_catastrophic_regex_is_cut_off():
    fmt = rewards.load("format", pattern=r"(a+)+$", timeout_s=1.0, workers=1, fallback=-1.0)
    try:
        assert fmt(None, ["a" * 40 + "b", "aaa"]) == [-1.0, 1.0]
        assert fmt.stats["timeouts"] == 1
    finally:
        fmt.close()


def test_overlong_dapo():
    assert soft_overlong_penalty(10, 20, 5) == 0.0
    assert soft_overlong_penalty(15, 20, 5) == 0.0
    assert soft_overlong_penalty(18, 20, 5) == pytest.approx(-0.6)
    assert soft_overlong_penalty(20, 20, 5) == pytest.approx(-1.0)
    assert soft_overlong_penalty(21, 20, 5) == -1.0
    ol = rewards.load("overlong", max_length=20, cache_length=5)
    assert ol(None, ["x", "y", "z"], completion_ids=[[1] * 10, [1] * 18, [1] * 30]) == pytest.approx([0.0, -0.6, -1.0])
    assert ol(None, ["a" * 18]) == pytest.approx([-0.6])  # characters without ids
    with pytest.raises(ValueError):
        rewards.load("overlong", max_length=10, cache_length=20)


def test_combine_and_config():
    combo = rewards.from_config([{"name": "exact_match", "weight": 1.0}, {"name": "format", "weight": 0.5, "isolation": "inline"}])
    comps = ["<think>.</think><answer>4</answer>", "4", "<think>.</think><answer>5</answer>"]
    assert combo(None, comps, answer=["4", "4", "4"]) == [1.5, 1.0, 0.5]
    both_none = rewards.combine([(lambda p, c, **k: [None] * len(c), 1.0), (lambda p, c, **k: [1.0] * len(c), 2.0)])
    assert both_none(None, ["a"]) == [2.0]
    strict = rewards.combine([(lambda p, c, **k: [None] * len(c), 1.0), (lambda p, c, **k: [1.0] * len(c), 2.0)], missing="none")
    assert strict(None, ["a"]) == [None]


def test_noisy_corrections():
    fp, fn = 0.1, 0.2
    back = rewards.load("noisy", reward="exact_match", fp_rate=fp, fn_rate=fn, mode="backward")
    assert back(None, ["#### 5", "#### 6", "x"], answer=["5", "5", None]) == pytest.approx([(1 - fp) / (1 - fp - fn), (0 - fp) / (1 - fp - fn), None])
    fwd = rewards.load("noisy", reward={"name": "exact_match"}, fp_rate=fp, fn_rate=fn, mode="forward")
    assert fwd(None, ["#### 5", "#### 6"], answer=["5", "5"]) == pytest.approx([fn, fn - 1])
    # unbiasedness of the backward map: E[R_hat | R] = R under the noise channel
    for r in (0, 1):
        p1 = fp if r == 0 else 1 - fn  # P(noisy = 1 | R = r)
        e = p1 * rewards.backward_correction(1, fp, fn) + (1 - p1) * rewards.backward_correction(0, fp, fn)
        assert e == pytest.approx(r)
        ew = p1 * rewards.forward_correction(1, fn) + (1 - p1) * rewards.forward_correction(0, fn)
        assert ew == pytest.approx(0.0 if r == 1 else -(1 - fp - fn))
    with pytest.raises(ValueError):
        rewards.load("noisy", reward="exact_match", fp_rate=0.6, fn_rate=0.5)


def test_registry_errors_and_import_paths():
    with pytest.raises(ValueError, match="built-in names"):
        rewards.load("no_such_reward")
    with pytest.raises(ValueError, match="bad parameters"):
        rewards.load("math", nonsense=1)
    r = rewards.load("rewards.exact_match:ExactMatchReward", extract="hashes", isolation="inline")
    assert r(None, ["#### 3"], answer=["3"]) == [1.0]
    assert set(rewards.available()) >= {"math", "exact_match", "format", "overlong", "code", "reward_model", "remote", "combine", "noisy"}


def test_single_and_verl_adapters():
    em = rewards.load("exact_match")
    single = rewards.to_single(em)
    assert single("#### 4", prompt="2+2?", answer="4") == 1.0
    verl = rewards.to_verl(em)
    assert verl("gsm8k", "#### 4", "4", {"question": "2+2?"}) == 1.0
    assert verl("gsm8k", "#### 5", "4") == 0.0
    batch = rewards.to_verl_batch(em)
    assert batch(["a", "b"], ["#### 4", "#### 9"], ["4", "4"], [None, {"split": "test"}]) == [1.0, 0.0]


def test_noisy_channel_flips_at_the_given_rates():
    ch = rewards.load("noisy_channel", reward="exact_match", fn_rate=0.3, seed=1)
    n = 4000
    out = ch(["p"] * n, ["7"] * n, answer=["7"] * (n // 2) + ["8"] * (n // 2))
    correct, wrong = out[: n // 2], out[n // 2:]
    assert abs(correct.count(0.0) / len(correct) - 0.3) < 0.03  # false negatives at rate .3
    assert wrong.count(1.0) == 0                                 # fp_rate 0: no false positives
    again = rewards.load("noisy_channel", reward="exact_match", fn_rate=0.3, seed=1)
    assert again(["p"] * n, ["7"] * n, answer=["7"] * (n // 2) + ["8"] * (n // 2)) == out  # seeded
