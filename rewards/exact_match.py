"""``exact_match``: the completion's final answer equals the ground truth after normalisation."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ._text import completion_text, extract_answer

__all__ = ["normalize_answer", "ExactMatchReward"]

_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalize_answer(text: Any, case_sensitive: bool = False) -> str:
    """Canonical string form of an answer.

    Strips whitespace, ``$`` and ``\\$``, ``\\boxed{}``/``\\text{}`` wrappers, ``\\left``/``\\right``, a trailing
    period and thousands separators; numbers get one form (``5.0`` -> ``5``, ``1,000`` -> ``1000``);
    lower-cases unless ``case_sensitive``.
    """
    s = "" if text is None else str(text)
    s = s.strip()
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = s[len("\\boxed{") : -1]
    s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = s.replace("\\$", "").replace("$", "").strip()  # math delimiters and escaped currency signs
    s = s.rstrip(".").strip()
    s = " ".join(s.split())
    s = _THOUSANDS.sub("", s)
    if _NUMBER.fullmatch(s):
        try:
            d = Decimal(s)
            if d.is_finite() and abs(d.adjusted()) < 30:
                s = format(d, "f")
                if "." in s:
                    s = s.rstrip("0").rstrip(".")
                s = s.lstrip("+")
                if s == "-0":
                    s = "0"
            else:
                s = str(d.normalize())
        except (InvalidOperation, ValueError):
            pass
    if not case_sensitive:
        s = s.lower()
    return s


class ExactMatchReward:
    """1.0 when the normalised extracted answer equals the normalised ground truth, else 0.0.

    Args:
        answer_column: column with the ground truth (a string, or a list of accepted answers).
        extract: how to find the answer in the completion (see ``rewards._text.extract_answer``:
            "auto", "boxed", "answer_tag", "hashes", "answer_is", "last_line", "none").
        case_sensitive: compare case-sensitively.
    Returns None for a sample with no ground truth.
    """

    __name__ = "exact_match"
    score_range = (0.0, 1.0)

    def __init__(self, answer_column: str = "answer", extract: str = "auto", case_sensitive: bool = False) -> None:
        extract_answer("", extract)  # validate the mode early
        self.answer_column = answer_column
        self.extract = extract
        self.case_sensitive = case_sensitive

    def score(self, completion: Any, gold: Any) -> float | None:
        if gold is None:
            return None
        golds = gold if isinstance(gold, (list, tuple)) else [gold]
        pred = normalize_answer(extract_answer(completion_text(completion), self.extract), self.case_sensitive)
        if not pred:
            return 0.0
        return float(any(pred == normalize_answer(g, self.case_sensitive) for g in golds))

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        golds = columns.get(self.answer_column) or [None] * len(completions)
        return [self.score(c, g) for c, g in zip(completions, golds)]
