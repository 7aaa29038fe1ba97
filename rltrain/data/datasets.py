"""Prompt datasets: JSONL/Parquet loading, a resumable deterministic sampler, prompt rendering.

A row holds a prompt (plain text, or chat messages verl-style: ``[{"role": ..., "content": ...}]``),
an answer (any scalar, stored as ``str``) and every other column, which reward functions receive as
keyword arguments. Each row has a stable key: its ``id`` column when present, else
``"<file name>:<row index>"`` (0-based index of the row within its file).

Malformed rows fail at load time with ``DataError`` naming the place: ``file.jsonl:LINE`` (1-based
line) or ``file.parquet:row N`` (0-based row), and the reason.

`PromptSampler` draws batches from a permutation fixed by ``(seed, epoch)``; its state is just
``{"epoch", "index", "seed"}``, so a resumed run sees exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from rltrain.data.jsonl import DataError, iter_jsonl

__all__ = ["DataError", "PromptRow", "load_prompts", "rows_from_dicts", "render_prompt"]

JSONL_EXTS = (".jsonl", ".ndjson")
PARQUET_EXTS = (".parquet", ".pq")


@dataclass
class PromptRow:
    """One prompt. `columns` holds every column except the prompt and answer ones (ids included)."""

    prompt: str | list[dict]
    answer: str | None
    columns: dict[str, Any] = field(default_factory=dict)
    key: str = ""


# ----------------------------------------------------------------------------------------------
# row validation


def _check_prompt(prompt: Any, prompt_key: str) -> str | list[dict]:
    """Return the prompt, or raise DataError (without location) explaining what is wrong."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"empty prompt in column '{prompt_key}'")
        return prompt
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise DataError(f"empty prompt in column '{prompt_key}' (no messages)")
        messages = []
        for i, msg in enumerate(prompt):
            if not isinstance(msg, Mapping):
                raise DataError(f"message {i} of '{prompt_key}' is {type(msg).__name__}, expected an object")
            for k in ("role", "content"):
                if k not in msg or msg[k] is None:
                    raise DataError(f"message {i} of '{prompt_key}' has no '{k}'")
                if not isinstance(msg[k], str):
                    raise DataError(
                        f"message {i} of '{prompt_key}': '{k}' must be a string, got {type(msg[k]).__name__}"
                    )
            messages.append(dict(msg))
        if not any(m["content"].strip() for m in messages):
            raise DataError(f"empty prompt in column '{prompt_key}' (every message is empty)")
        return messages
    raise DataError(
        f"column '{prompt_key}' must be a string or a list of {{role, content}} messages, "
        f"got {type(prompt).__name__}"
    )


def _make_row(
    record: Any, where: str, default_key: str, prompt_key: str, answer_key: str, require_answer: bool
) -> PromptRow:
    """Validate one decoded record; errors are prefixed with `where`."""
    try:
        if not isinstance(record, Mapping):
            raise DataError(f"row is {type(record).__name__}, expected an object")
        if prompt_key not in record or record[prompt_key] is None:
            cols = ", ".join(map(str, record)) or "none"
            raise DataError(f"missing prompt column '{prompt_key}' (columns: {cols})")
        prompt = _check_prompt(record[prompt_key], prompt_key)
        answer = record.get(answer_key)
        if answer is None:
            if require_answer:
                raise DataError(f"missing answer column '{answer_key}' (or it is null)")
        elif isinstance(answer, (str, int, float, bool)):
            answer = str(answer)
        else:
            raise DataError(f"answer column '{answer_key}' must be a scalar, got {type(answer).__name__}")
        columns = {k: v for k, v in record.items() if k not in (prompt_key, answer_key)}
        rid = record.get("id")
        key = default_key if rid is None else str(rid)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    return PromptRow(prompt=prompt, answer=answer, columns=columns, key=key)


# ----------------------------------------------------------------------------------------------
# files


def _jsonl_rows(path: str, **kw: Any) -> list[PromptRow]:
    name = os.path.basename(path)
    rows: list[PromptRow] = []
    for lineno, record in iter_jsonl(path, DataError):
        rows.append(_make_row(record, f"{path}:{lineno}", f"{name}:{len(rows)}", **kw))
    return rows


def _parquet_rows(path: str, **kw: Any) -> list[PromptRow]:
    import pyarrow.parquet as pq

    name = os.path.basename(path)
    try:
        records = pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DataError(f"{path}: cannot read Parquet: {e}") from None
    return [_make_row(r, f"{path}:row {i}", f"{name}:{i}", **kw) for i, r in enumerate(records)]


def load_prompts(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    prompt_key: str = "prompt",
    answer_key: str = "answer",
    require_answer: bool = True,
) -> list[PromptRow]:
    """Load prompt rows from one or more JSONL (`.jsonl`, `.ndjson`) / Parquet (`.parquet`, `.pq`) /
    CSV / JSON files or Hugging Face dataset directories (`save_to_disk`, or data files `load_dataset`
    reads; rltrain/data/sources.py), in order. Raises `DataError` for a missing or empty file, an unknown extension, a
    malformed row (with its file:line / file:row N) or a key (`id`) used twice."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise DataError("no prompt files given")
    kw = dict(prompt_key=prompt_key, answer_key=answer_key, require_answer=require_answer)
    out: list[PromptRow] = []
    seen: dict[str, str] = {}
    for p in paths:
        path = os.fspath(p)
        ext = os.path.splitext(path)[1].lower()
        if os.path.isdir(path) or ext in (".csv", ".json"):  # a Hugging Face dataset directory, CSV, a JSON list
            from rltrain.data.sources import iter_records

            name = os.path.basename(path.rstrip("/"))
            rows = [_make_row(rec, label, f"{name}:{i}", **kw) for i, (label, rec) in enumerate(iter_records(path))]
        elif not os.path.isfile(path):
            raise DataError(f"prompt file not found: {path}")
        elif ext in JSONL_EXTS:
            rows = _jsonl_rows(path, **kw)
        elif ext in PARQUET_EXTS:
            rows = _parquet_rows(path, **kw)
        else:
            raise DataError(f"{path}: unknown prompt file type '{ext}' (use {', '.join(JSONL_EXTS + PARQUET_EXTS)}, "
                            ".csv, .json or a dataset directory)")
        if not rows:
            raise DataError(f"{path}: empty prompt file (no rows)")
        for r in rows:
            if r.key in seen:
                raise DataError(
                    f"{path}: prompt key '{r.key}' appears twice (also in {seen[r.key]}); "
                    "'id' values must be unique"
                )
            seen[r.key] = path
        out.extend(rows)
    return out


def rows_from_dicts(
    records: Iterable[Mapping[str, Any]],
    source: str = "rows",
    prompt_key: str = "prompt",
    answer_key: str = "answer",
    require_answer: bool = True,
) -> list[PromptRow]:
    """In-memory records (e.g. a built-in task's rows) -> validated `PromptRow`s; keys and errors
    use `source` in place of a file name."""
    kw = dict(prompt_key=prompt_key, answer_key=answer_key, require_answer=require_answer)
    rows = [_make_row(r, f"{source}:row {i}", f"{source}:{i}", **kw) for i, r in enumerate(records)]
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


# ----------------------------------------------------------------------------------------------
# rendering


def render_prompt(prompt: str | list[dict], tokenizer: Any = None) -> str:
    """Prompt -> text for the engine.

    Plain text is returned unchanged. Messages go through the tokenizer's chat template
    (`add_generation_prompt=True`) when it has one, else a plain "role: content" transcript that
    ends with "assistant: ".
    """
    if isinstance(prompt, str):
        return prompt
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant: "
