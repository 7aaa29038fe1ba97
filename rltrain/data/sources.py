"""Rows from wherever a user keeps them: JSONL / Parquet / CSV files, Hugging Face datasets (a directory
written by `save_to_disk`, local files read by `load_dataset`, or a `datasets.Dataset` passed from
Python). Every source gives plain dicts, one per row, with a label that names the row in errors
(`file:line` for JSONL, `file:row N` otherwise, `dataset[N]` for a Dataset).

`datasets` is imported only when a Hugging Face source is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from rltrain.data.jsonl import DataError, iter_jsonl

__all__ = ["iter_records", "source_label"]

_HF_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def source_label(source: Any) -> str:
    return source if isinstance(source, str) else f"{type(source).__name__}"


def _is_hf_disk_dir(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, f)) for f in
                                       ("dataset_info.json", "state.json", "dataset_dict.json"))


def _hf_rows(ds: Any, label: str, split: str) -> Iterator[tuple[str, dict]]:
    if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        if split not in ds:
            raise DataError(f"{label}: no split {split!r} in the dataset (splits: {', '.join(ds.keys())})")
        ds = ds[split]
    for i, row in enumerate(ds):
        yield f"{label}[{i}]", dict(row)


def iter_records(source: Any, split: str = "train") -> Iterator[tuple[str, dict]]:
    """(label, row) for every row of `source`: a file path, a directory `save_to_disk` wrote, a directory
    of data files (read with `load_dataset`), or a `datasets.Dataset` / `DatasetDict`."""
    if not isinstance(source, str):
        yield from _hf_rows(source, "dataset", split)
        return
    path = os.path.expanduser(source)
    if not os.path.exists(path):
        raise DataError(f"{source}: no such file or directory")
    if os.path.isdir(path):
        import datasets

        try:
            ds = datasets.load_from_disk(path) if _is_hf_disk_dir(path) else datasets.load_dataset(path)
        except Exception as e:  # noqa: BLE001 - whatever datasets raises, name the directory
            raise DataError(f"{source}: not a dataset directory datasets can read ({type(e).__name__}: {e})") from None
        yield from _hf_rows(ds, source, split)
        return
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jsonl":
        for lineno, row in iter_jsonl(path, DataError):
            yield f"{source}:{lineno}", row
        return
    if ext == ".json":
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise DataError(f"{source}: invalid JSON ({e})") from None
        if not isinstance(data, list):
            raise DataError(f"{source}: a .json file must hold a list of rows")
        for i, row in enumerate(data):
            yield f"{source}:row {i}", row
        return
    if ext in (".parquet", ".csv"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pq.read_table(path) if ext == ".parquet" else pacsv.read_csv(path)
        for i, row in enumerate(table.to_pylist()):
            yield f"{source}:row {i + 1}", row
        return
    raise DataError(f"{source}: unknown data file type {ext!r}; use .jsonl, .json, .parquet, .csv or a dataset "
                    "directory (save_to_disk)")
