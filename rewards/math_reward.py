"""``math``: answer verification with math-verify on the completion's boxed or final answer."""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from ._latex_parser import check_parser
from ._text import completion_text, extract_answer
from .exact_match import normalize_answer

__all__ = ["MathReward", "math_reward"]


@functools.lru_cache(maxsize=1)
def _configs() -> tuple[list, list]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    check_parser()  # the same parse under every antlr4 runtime math-verify supports, or a clear error
    pred = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = [LatexExtractionConfig(), ExprExtractionConfig()]
    return pred, gold


def _timeout(seconds: int | None) -> int | None:
    """math-verify's own timeouts use signal.alarm, which only works in the main thread."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        return None
    return max(1, int(seconds))


# a "$" that delimits math, not an escaped one: a gold such as \$18.90 is a currency amount
_DELIMITER = re.compile(r"(?<!\\)\$")


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, parse_timeout_s: int | None) -> tuple:
    from math_verify import parse

    _, gold_cfg = _configs()
    t = _timeout(parse_timeout_s)
    text = gold.strip()
    if "\\boxed" in text or _DELIMITER.search(text):
        candidates = [text]
    else:
        candidates = [f"${text}$", f"\\boxed{{{text}}}", text]
    for cand in candidates:
        parsed = parse(cand, extraction_config=gold_cfg, parsing_timeout=t)
        if parsed:
            return tuple(parsed)
    return ()


class MathReward:
    """1.0 when the completion's answer equals the ground truth, else 0.0 (math-verify).

    The answer is the last ``\\boxed{}`` in the completion, else a final answer math-verify finds
    ("the final answer is ...", a trailing expression). Equivalent forms count: 1/2 = \\frac12 =
    0.5, 1,000 = 1000, (x+1)^2 = x^2+2x+1, 10% = 0.1. When the ground truth is not mathematical
    (math-verify cannot parse it) the normalised strings are compared instead.

    Args:
        answer_column: dataset column holding the ground truth (default "answer").
        parse_timeout_s / verify_timeout_s: math-verify's own limits (main thread only; the
            guard's ``timeout_s`` bounds the whole sample in any case).
        max_chars: only the last ``max_chars`` characters of a completion are parsed.
        float_rounding: digits math-verify rounds floats to before comparing.
    Returns None for a sample with no ground truth.
    """

    __name__ = "math"
    score_range = (0.0, 1.0)

    def __init__(
        self,
        answer_column: str = "answer",
        parse_timeout_s: int | None = 3,
        verify_timeout_s: int | None = 3,
        max_chars: int = 10_000,
        float_rounding: int = 6,
    ) -> None:
        self.answer_column = answer_column
        self.parse_timeout_s = parse_timeout_s
        self.verify_timeout_s = verify_timeout_s
        self.max_chars = int(max_chars)
        self.float_rounding = int(float_rounding)

    def warmup(self) -> None:
        """Import math-verify and run one verification (first use costs seconds, not per sample)."""
        self.score("\\boxed{\\frac{1}{2}}", "0.5")

    def score(self, completion: Any, gold: Any) -> float | None:
        """Score one completion against one ground truth."""
        if gold is None:
            return None
        from math_verify import parse, verify

        gold_s = str(gold)
        text = completion_text(completion)[-self.max_chars :]
        if not text.strip():
            return 0.0
        gold_parsed = _parse_gold(gold_s, self.parse_timeout_s)
        if not gold_parsed:
            return float(normalize_answer(extract_answer(text)) == normalize_answer(gold_s))
        pred_cfg, _ = _configs()
        pred = parse(text, extraction_config=pred_cfg, parsing_timeout=_timeout(self.parse_timeout_s))
        if not pred:
            return 0.0
        ok = verify(
            list(gold_parsed), pred, float_rounding=self.float_rounding,
            timeout_seconds=_timeout(self.verify_timeout_s),
        )
        return 1.0 if ok else 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        golds = columns.get(self.answer_column) or [None] * len(completions)
        return [self.score(c, g) for c, g in zip(completions, golds)]


def math_reward(prompts: list[Any], completions: list[Any], answer: list[Any] | None = None, **_: Any) -> list[float | None]:
    """Function form of :class:`MathReward` with default settings (no guard)."""
    return MathReward()(prompts, completions, answer=answer)
