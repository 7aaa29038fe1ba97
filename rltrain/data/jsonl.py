"""What every data reader shares: the error that names a file and row, and JSON Lines reading."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

__all__ = ["DataError", "iter_jsonl"]


class DataError(ValueError):
    """A data file or dataset is missing, empty or holds a malformed row (the message names it)."""


def iter_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a line that is not JSON raises `error`
    naming `path:line`."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
