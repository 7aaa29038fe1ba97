"""The math reward on real answer forms: equivalent, wrong, empty, malformed, huge, unicode."""

import time

import pytest

import rewards

EQUIVALENT = [
    ("1/2", "The answer is $\\boxed{\\frac{1}{2}}$."),
    ("0.5", "so the result is \\boxed{1/2}"),
    ("1/2", "Therefore the final answer is 0.5"),
    ("\\frac{1}{2}", "\\boxed{\\dfrac{1}{2}}"),
    ("\\frac{3}{4}", "\\boxed{3/4}"),
    ("1000", "The total is \\boxed{1,000}."),
    ("1,000", "Final answer: 1000"),
    ("1234567", "\\boxed{1,234,567}"),
    ("x^2+2x+1", "Expanding, we get \\boxed{(x+1)^2}"),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}"),
    ("2\\pi", "\\boxed{2 \\pi}"),
    ("72", "Natalia sold 48/2 = 24 clips in May.\n#### 72"),
    ("10\\%", "\\boxed{0.1}"),
    ("-3", "\\boxed{-3.0}"),
    ("π", "\\boxed{\\pi}"),
    ("2", "所以答案是 \\boxed{2}。"),
    ("[1,2]", "\\boxed{[1,2]}"),
]

WRONG = [
    ("1/2", "\\boxed{\\frac{1}{3}}"),
    ("1000", "\\boxed{100}"),
    ("x^2+2x+1", "\\boxed{(x-1)^2}"),
    ("3", "the answer is \\boxed{4}"),
    ("72", "#### 73"),
]

MALFORMED = ["", "   ", "\\boxed{", "}}}{{\\frac{", "\\boxed{\\frac{1}{}", "$$$$", "\x00\x01\x02", "🙂🙃" * 50, "a" * 50_000]


def test_equivalent_forms(math_reward):
    golds = [g for g, _ in EQUIVALENT]
    comps = [c for _, c in EQUIVALENT]
    assert math_reward(["q"] * len(comps), comps, answer=golds) == [1.0] * len(comps)


def test_wrong_answers(math_reward):
    golds = [g for g, _ in WRONG]
    comps = [c for _, c in WRONG]
    assert math_reward(["q"] * len(comps), comps, answer=golds) == [0.0] * len(comps)


def test_empty_and_malformed_output_scores_zero(math_reward):
    out = math_reward(["q"] * len(MALFORMED), MALFORMED, answer=["3"] * len(MALFORMED))
    assert out == [0.0] * len(MALFORMED)


def test_conversational_completions(math_reward):
    prompts = [[{"role": "user", "content": "What is 1+1?"}]] * 2
    comps = [[{"role": "assistant", "content": "\\boxed{2}"}], [{"role": "assistant", "content": [{"type": "text", "text": "\\boxed{3}"}]}]]
    assert math_reward(prompts, comps, answer=["2", "2"]) == [1.0, 0.0]


def test_missing_ground_truth_is_none(math_reward):
    assert math_reward(["q", "q"], ["\\boxed{2}", "\\boxed{2}"], answer=[None, "2"]) == [None, 1.0]
    assert math_reward(["q"], ["\\boxed{2}"]) == [None]  # no answer column at all


def test_huge_expressions_are_bounded():
    reward = rewards.load("math", timeout_s=1.0, workers=2)
    try:
        # a power tower (sympy big-int work that holds the GIL) and a 3,000-term sum
        comps = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{2}", "\\boxed{" + "+".join(["x"] * 3000) + "}"]
        reward(["q"], ["\\boxed{1}"], answer=["1"])  # workers up before timing
        t0 = time.monotonic()
        out = reward(["q"] * 3, comps, answer=["5", "2", "5"])
        took = time.monotonic() - t0
        assert out[1] == 1.0
        assert out[0] in (0.0, None) and out[2] in (0.0, None)
        assert took < 6, took  # each bounded by timeout_s=1 (2 workers)
        # the caller keeps going: the pool still scores afterwards
        assert reward(["q"], ["\\boxed{7}"], answer=["7"]) == [1.0]
    finally:
        reward.close()


@pytest.mark.parametrize("gold,comp,want", [
    ("1/2", "\\boxed{0.50}", 1.0),
    ("x+y", "\\boxed{y+x}", 1.0),
    ("\\sqrt{8}", "\\boxed{2\\sqrt{2}}", 1.0),
])
def test_symbolic_equality_inline(gold, comp, want):
    """Same checks without the process pool (the guard's inline mode, main thread)."""
    reward = rewards.load("math", isolation="inline")
    assert reward(["q"], [comp], answer=[gold]) == [want]
