"""Scores completions with the configured reward functions (the `rewards` package).

Each function has TRL's signature `fn(prompts, completions, **columns) -> list[float | None]`;
dataset columns (the answer and every other column of the row) arrive as keyword arguments. The
total is `rewards.combine`'s weighted sum with `missing="none"`: a sample any function could not
score (None) gets None and is dropped from the update, and the runner logs which function missed.
Per-sample time limits and error handling come from `rewards.load`, and so does the range check:
a score outside the range its reward declares is dropped like a failure. `counts()` sums the guards'
counters (errors, timeouts, out-of-range scores, and the code reward's tests and the tests among them
whose verdict rests on the program's own report), which the collector logs per step as `reward/*`.
"""

from __future__ import annotations

import logging
from typing import Any

from rltrain.config.schema import RewardConfig
from rltrain.data import PromptRow

log = logging.getLogger("rltrain.rewards")

# guard counters logged per step (`reward/<name>`): failures, scores outside the declared range, and the
# code reward's tests and those of a form whose verdict rests on the program's own report
COUNTED = ("errors", "timeouts", "out_of_range", "tests", "untrusted_tests")


class RewardRunner:
    def __init__(self, cfg: RewardConfig, answer_key: str = "answer") -> None:
        import rewards

        self.answer_key = answer_key
        self.labels: list[str] = []
        parts = []
        for i, fc in enumerate(cfg.functions):
            try:
                fn = rewards.load(fc.name, timeout_s=cfg.timeout_s, **fc.params)
            except Exception as e:  # name the config entry, not just the import error
                raise ValueError(f"reward.functions[{i}].name={fc.name!r}: cannot load: {e}") from e
            self.labels.append(fc.name.split(":")[-1].split(".")[-1])
            parts.append((fn, fc.weight))
        self.combined = rewards.combine(parts, missing="none")

    def columns(self, rows: list[PromptRow]) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {self.answer_key: [r.answer for r in rows]}
        if self.answer_key != "answer":
            cols["answer"] = cols[self.answer_key]
        for key in {k for r in rows for k in r.columns}:
            cols.setdefault(key, [r.columns.get(key) for r in rows])
        return cols

    def counts(self) -> dict[str, int]:
        """The guards' counters so far, summed over the reward functions (`COUNTED`)."""
        return {k: sum(int(fn.stats.get(k, 0)) for fn, _ in self.combined.parts) for k in COUNTED}

    def __call__(self, prompts: list, completions: list[str], rows: list[PromptRow]
                 ) -> tuple[list[float | None], dict[str, list[float | None]]]:
        total = self.combined(prompts, completions, **self.columns(rows))
        parts = dict(zip(self.labels, self.combined.last_parts.values()))
        for i, t in enumerate(total):
            if t is None:
                missing = [label for label, scores in parts.items() if scores[i] is None]
                log.warning("sample %d (prompt %s): no score from %s; dropped from the update",
                            i, rows[i].key, ", ".join(missing))
        return total, parts
