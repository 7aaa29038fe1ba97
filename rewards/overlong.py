"""``overlong``: DAPO's soft overlong punishment (a length penalty that ramps up near the limit)."""

from __future__ import annotations

from typing import Any

from ._text import completion_text

__all__ = ["OverlongReward", "soft_overlong_penalty"]


def soft_overlong_penalty(length: int, max_length: int, cache_length: int) -> float:
    """DAPO (arXiv 2503.14476, eq. 13): 0 up to ``max_length - cache_length``, then a linear ramp
    to -1 at ``max_length``, and -1 beyond it."""
    start = max_length - cache_length
    if length <= start:
        return 0.0
    if length <= max_length:
        return (start - length) / cache_length
    return -1.0


class OverlongReward:
    """Soft overlong penalty on the completion length.

    Length is ``len(completion_ids)`` when the trainer passes token ids (TRL does, as the
    ``completion_ids`` keyword), else the token count from ``tokenizer`` (a local tokenizer
    directory, loaded lazily with transformers), else the character count divided by
    ``chars_per_token``.

    Args:
        max_length: L_max, the generation limit in tokens.
        cache_length: L_cache, the width of the ramp (must be in (0, max_length]).
        tokenizer: optional path of a Hugging Face tokenizer directory.
        chars_per_token: used only without ids and tokenizer (default 1: characters).
    """

    __name__ = "overlong"
    score_range = (-1.0, 0.0)

    def __init__(self, max_length: int, cache_length: int, tokenizer: str | None = None, chars_per_token: float = 1.0) -> None:
        if not (0 < cache_length <= max_length):
            raise ValueError(f"need 0 < cache_length <= max_length, got {cache_length}, {max_length}")
        self.max_length = int(max_length)
        self.cache_length = int(cache_length)
        self.tokenizer = tokenizer
        self.chars_per_token = float(chars_per_token)
        self._tok: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tok": None}

    def _length(self, completion: Any, ids: Any) -> int:
        if ids is not None:
            return len(ids)
        text = completion_text(completion)
        if self.tokenizer:
            if self._tok is None:
                from transformers import AutoTokenizer  # lazy: only when a tokenizer is named

                self._tok = AutoTokenizer.from_pretrained(self.tokenizer)
            return len(self._tok(text, add_special_tokens=False)["input_ids"])
        return int(len(text) / self.chars_per_token)

    def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[Any] | None = None, **columns: Any) -> list[float | None]:
        ids = completion_ids if completion_ids is not None else [None] * len(completions)
        return [soft_overlong_penalty(self._length(c, i), self.max_length, self.cache_length) for c, i in zip(completions, ids)]
