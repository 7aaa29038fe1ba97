"""Scores completions with the configured reward functions (the `rewards` package).

Each function has TRL's signature `fn(prompts, completions, **columns) -> list[float | None]`;
dataset columns (the answer and every other column of the row) arrive as keyword arguments.
The total is the weighted sum; a sample any function could not score (None) is dropped from the
update, and logged. Per-sample time limits and error handling come from `rewards.load`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from rltrain.config.schema import RewardConfig
from rltrain.data import PromptRow

log = logging.getLogger("rltrain.rewards")


class RewardRunner:
    def __init__(self, cfg: RewardConfig, answer_key: str = "answer") -> None:
        import rewards

        self.answer_key = answer_key
        self.fns: list[tuple[str, float, Callable]] = []
        for i, fc in enumerate(cfg.functions):
            try:
                fn = rewards.load(fc.name, timeout_s=cfg.timeout_s, **fc.params)
            except Exception as e:  # name the config entry, not just the import error
                raise ValueError(f"reward.functions[{i}].name={fc.name!r}: cannot load: {e}") from e
            label = fc.name.split(":")[-1].split(".")[-1]
            self.fns.append((label, fc.weight, fn))

    def columns(self, rows: list[PromptRow]) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {self.answer_key: [r.answer for r in rows]}
        if self.answer_key != "answer":
            cols["answer"] = cols[self.answer_key]
        for key in {k for r in rows for k in r.columns}:
            cols.setdefault(key, [r.columns.get(key) for r in rows])
        return cols

    def __call__(self, prompts: list, completions: list[str], rows: list[PromptRow]
                 ) -> tuple[list[float | None], dict[str, list[float | None]]]:
        cols = self.columns(rows)
        parts: dict[str, list[float | None]] = {}
        for label, _, fn in self.fns:
            scores = list(fn(prompts, completions, **cols))
            if len(scores) != len(completions):
                raise ValueError(f"reward {label!r} returned {len(scores)} scores for {len(completions)} completions")
            parts[label] = [None if s is None else float(s) for s in scores]
        total: list[float | None] = []
        for i in range(len(completions)):
            vals = [(w, parts[label][i]) for label, w, _ in self.fns]
            if any(v is None for _, v in vals):
                missing = [label for (label, _, _), (_, v) in zip(self.fns, vals) if v is None]
                log.warning("sample %d (prompt %s): no score from %s; dropped from the update",
                            i, rows[i].key, ", ".join(missing))
                total.append(None)
            else:
                total.append(sum(w * v for w, v in vals))
        return total, parts
