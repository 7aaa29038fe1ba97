"""Preference pairs for reward-model training: a file (JSONL/Parquet) or a built-in set.

A row holds `prompt`, `chosen` and `rejected`: each plain text, or chat messages in TRL's
preference format (`prompt` a list of messages, `chosen` / `rejected` the assistant turns). A
malformed row fails at load time naming `file:line` (JSONL, 1-based) or `file:row N` (Parquet).

The built-in set (`builtin_pairs`) is made from a built-in task whose truth is known: the chosen
completion is the correct answer; the rejected one is, in turn, a wrong answer with one digit
changed, the problem's own digits unreversed / unsorted (a plausible mistake), or the right answer
followed by rambling (concise over rambling). Held-out pairs come from the task's test split, so
the prompts never overlap the training pairs'.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from rltrain.data.datasets import DataError, iter_jsonl
from rltrain.data.tasks import make_rows

REJECTION_KINDS = ("wrong_digit", "plausible_mistake", "rambling")


@dataclass
class PreferencePair:
    prompt: str | list[dict]
    chosen: str | list[dict]
    rejected: str | list[dict]
    kind: str = "file"


def _one_digit_changed(answer: str, rng: random.Random) -> str:
    i = rng.randrange(len(answer))
    digit = rng.choice([d for d in "0123456789" if d != answer[i]])
    return answer[:i] + digit + answer[i + 1:]


def _rejected(kind: str, row: dict, rng: random.Random) -> str:
    answer = row["answer"]
    if kind == "plausible_mistake":
        given = row.get("digits") or str(row.get("a", "")) + str(row.get("b", ""))
        if given and given != answer:
            return given
        kind = "wrong_digit"
    if kind == "rambling":
        return answer + " " + " ".join(rng.choice([answer, answer[::-1], "so", "ok"]) for _ in range(rng.randint(2, 4)))
    return _one_digit_changed(answer, rng)


def builtin_pairs(task: str, split: str, n: int, seed: int = 0) -> list[PreferencePair]:
    """`n` pairs from `task`'s `split`, the rejection kinds in turn (deterministic in `seed`)."""
    rng = random.Random(f"rltrain:prefs:{task}:{split}:{seed}")
    rows = make_rows(task, split, n, seed)
    return [PreferencePair(r["prompt"], r["answer"], _rejected(REJECTION_KINDS[i % 3], r, rng), REJECTION_KINDS[i % 3])
            for i, r in enumerate(rows)]


def _text_or_messages(value: Any, column: str, where: str) -> str | list[dict]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return [dict(m) for m in value]
    raise DataError(f"{where}: column {column!r} must be non-empty text or a list of chat messages "
                    f"({{'role', 'content'}}), got {value!r:.80}")


def _pair(record: Any, where: str) -> PreferencePair:
    if not isinstance(record, dict):
        raise DataError(f"{where}: a preference row must be an object with prompt, chosen and rejected")
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in record]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; a preference row has prompt, chosen and rejected")
    return PreferencePair(*(_text_or_messages(record[c], c, where) for c in ("prompt", "chosen", "rejected")))


def load_pairs(path: str) -> list[PreferencePair]:
    """Every pair of a JSONL or Parquet file."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such preference file")
    if path.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        pairs = [_pair(r, f"{path}:row {i}") for i, r in enumerate(pq.read_table(path).to_pylist())]
    else:
        pairs = [_pair(r, f"{path}:{line}") for line, r in iter_jsonl(path, DataError)]
    if not pairs:
        raise DataError(f"{path}: no preference rows")
    return pairs
