"""`PromptSampler`: deterministic, resumable batches of prompt rows.

Epoch `e` visits the rows in a permutation fixed by `(seed, e)`; the state is just
`{"epoch", "index", "seed"}`, so a resumed run sees exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rltrain.data.datasets import DataError, PromptRow


class PromptSampler:
    """Deterministic, resumable batches of rows.

    Epoch `e` visits the rows in the order of a permutation drawn from `(seed, e)` (identity when
    `shuffle=False`). With `drop_last`, a batch never crosses an epoch boundary: a tail shorter
    than `batch_size` is skipped; without it the tail is returned as a short batch. `take(n)`
    returns exactly `n` rows, continuing into following epochs as needed.
    """

    def __init__(
        self,
        rows: Sequence[PromptRow],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if not rows:
            raise DataError("PromptSampler needs at least one row")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and batch_size > len(rows):
            raise DataError(
                f"batch_size {batch_size} is larger than the dataset ({len(rows)} rows) with drop_last=True"
            )
        self.rows = list(rows)
        self.batch_size = batch_size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._epoch = 0
        self._index = 0
        self._order_epoch = -1
        self._order: np.ndarray | None = None

    @property
    def epoch(self) -> int:
        """The epoch the next row comes from (or the one just finished, until the next draw)."""
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _perm(self) -> np.ndarray:
        if self._order_epoch != self._epoch:
            n = len(self.rows)
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, self._epoch]).permutation(n)
            else:
                self._order = np.arange(n)
            self._order_epoch = self._epoch
        assert self._order is not None
        return self._order

    def _advance_epoch(self) -> None:
        self._epoch += 1
        self._index = 0

    def next_batch(self) -> list[PromptRow]:
        """The next `batch_size` rows (fewer only for the last batch of an epoch without drop_last)."""
        n = len(self.rows)
        if self._index >= n or (self.drop_last and self._index + self.batch_size > n):
            self._advance_epoch()
        end = min(self._index + self.batch_size, n)
        batch = [self.rows[i] for i in self._perm()[self._index : end]]
        self._index = end
        return batch

    def take(self, n: int) -> list[PromptRow]:
        """Exactly `n` rows from the current position, crossing epochs as needed."""
        out: list[PromptRow] = []
        while len(out) < n:
            if self._index >= len(self.rows):
                self._advance_epoch()
            end = min(self._index + (n - len(out)), len(self.rows))
            out.extend(self.rows[i] for i in self._perm()[self._index : end])
            self._index = end
        return out

    def __iter__(self) -> Iterator[list[PromptRow]]:
        """Endless batches (use `next_batch` / `take` for explicit control)."""
        while True:
            yield self.next_batch()

    # what every prompt sampler offers the collector (rltrain/data/cures.py uses them; here they are no-ops)
    def allocation(self, rows: Sequence[PromptRow], n: int) -> list[int] | None:
        """Samples per row from a budget of len(rows) x n; None = n each."""
        return None

    def observe(self, keys: Sequence[str], rewards: Sequence[float | None]) -> None:
        """The scored rollouts of drawn prompts (a sampler that adapts learns from them)."""

    def metrics(self) -> dict[str, float]:
        """Metrics of the last draw."""
        return {}

    def state_dict(self) -> dict[str, int]:
        """The cursor: `{"epoch", "index" (position within the epoch), "seed"}`."""
        return {"epoch": self._epoch, "index": self._index, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a `state_dict()`; the checkpoint's seed wins over the constructor's."""
        missing = {"epoch", "index", "seed"} - set(state)
        if missing:
            raise ValueError(f"sampler state is missing {sorted(missing)}")
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index <= len(self.rows):
            raise ValueError(
                f"sampler state epoch={epoch} index={index} does not fit a dataset of {len(self.rows)} rows"
            )
        self.seed = int(state["seed"])
        self._epoch, self._index = epoch, index
        self._order_epoch = -1
