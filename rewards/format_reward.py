"""``format``: does the completion follow a required layout (a regular expression)?"""

from __future__ import annotations

import re
from typing import Any

from ._text import completion_text

__all__ = ["FormatReward", "THINK_ANSWER"]

#: ``<think>...</think>`` then ``<answer>...</answer>`` and nothing else (whitespace allowed), each
#: tag pair holding something besides whitespace: empty tags are the layout without the content it
#: asks for, and would otherwise be a free score_match for any completion.
THINK_ANSWER = r"^\s*<think>\s*(?!</think>)\S.*?</think>\s*<answer>\s*(?!</answer>)\S.*?</answer>\s*$"

_FLAGS = {"DOTALL": re.DOTALL, "IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE}


class FormatReward:
    """``score_match`` when the completion matches ``pattern``, else ``score_miss``.

    Args:
        pattern: a regular expression (default: think tags then answer tags).
        mode: "fullmatch" (whole completion) or "search" (anywhere).
        flags: names of ``re`` flags, default ["DOTALL"].
        score_match / score_miss: the two scores (default 1.0 / 0.0).
    Regexes can backtrack catastrophically on adversarial text: keep the default process
    isolation so the guard's ``timeout_s`` can end such a match.
    """

    __name__ = "format"

    def __init__(
        self,
        pattern: str = THINK_ANSWER,
        mode: str = "fullmatch",
        flags: list[str] | tuple[str, ...] = ("DOTALL",),
        score_match: float = 1.0,
        score_miss: float = 0.0,
    ) -> None:
        if mode not in ("fullmatch", "search"):
            raise ValueError(f"mode must be 'fullmatch' or 'search', got {mode!r}")
        bad = [f for f in flags if f not in _FLAGS]
        if bad:
            raise ValueError(f"unknown regex flags {bad}; allowed: {sorted(_FLAGS)}")
        value = 0
        for f in flags:
            value |= _FLAGS[f]
        self.pattern = pattern
        self.mode = mode
        self.flags = tuple(flags)
        self._regex = re.compile(pattern, value)
        self.score_match = float(score_match)
        self.score_miss = float(score_miss)

    @property
    def score_range(self) -> tuple[float, float]:
        """The two scores, lowest first."""
        return min(self.score_match, self.score_miss), max(self.score_match, self.score_miss)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_regex"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["pattern"], state["mode"], state["flags"], state["score_match"], state["score_miss"])

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        match = self._regex.fullmatch if self.mode == "fullmatch" else self._regex.search
        return [self.score_match if match(completion_text(c)) else self.score_miss for c in completions]
