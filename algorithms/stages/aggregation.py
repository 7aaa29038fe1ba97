"""Aggregation stages: one registered class per mode of core.AGG_MODES (its `mode`, fixed by the class)
+ an optional length budget (Dr.GRPO)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import AGG_MODES, aggregation_weights
from algorithms.registry import meta, register
from algorithms.stages.base import Aggregation


class ModeAggregation(Aggregation):
    mode: str = ""  # one of AGG_MODES, set by each registered subclass

    @dataclass
    class Params:
        # seq-mean-token-sum-norm only (Dr.GRPO's constant): None = the generation budget (rollout.max_new_tokens)
        length_budget: int | None = meta(None, gt=0)

    @property
    def reads(self) -> frozenset[F]:
        return frozenset({F.RESPONSE_MASK, F.GROUP_IDS} if self.mode == "group-token-mean" else {F.RESPONSE_MASK})

    def weights(self, batch: RolloutBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        m = batch.response_mask if mask is None else mask
        return aggregation_weights(m, self.mode, batch.group_ids, self.params.length_budget or batch.response_budget())


def _mode_class(mode: str) -> type:
    """The stage class of one mode, bound in this module under its name (so built algorithms pickle)."""
    name = "Aggregation_" + mode.replace("-", "_")
    cls = type(name, (ModeAggregation,), {"mode": mode, "__module__": __name__, "__qualname__": name})
    globals()[name] = cls
    return cls


for _mode in AGG_MODES:
    register("aggregation", _mode)(_mode_class(_mode))
