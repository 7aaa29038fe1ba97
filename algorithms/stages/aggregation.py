"""Aggregation stage: the mode name (core.AGG_MODES) + an optional length budget (Dr.GRPO)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import RolloutBatch
from algorithms.core import AGG_MODES, aggregation_weights
from algorithms.registry import meta, register
from algorithms.stages.base import Stage


class Aggregation(Stage):
    @dataclass
    class Params:
        length_budget: int | None = meta(None, gt=0)   # seq-mean-token-sum-norm only; None = batch width T

    def weights(self, batch: RolloutBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        m = batch.response_mask if mask is None else mask
        return aggregation_weights(m, self.name, batch.group_ids, self.params.length_budget)


for _mode in AGG_MODES:
    register("aggregation", _mode)(Aggregation)
