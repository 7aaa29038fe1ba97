"""Data policies: which samples enter the update (the trainer regenerates to refill).

- all: keep everything.
- dynamic_sampling (DAPO, arXiv 2503.14476 eq. 11): drop groups whose rewards are all equal.
- psr / nsr (Zhu et al., arXiv 2506.01347): keep correct (reward > threshold) / incorrect samples only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import group_inverse
from algorithms.registry import register
from algorithms.stages.base import DataPolicy


@register("data_policy", "all")
class KeepAll(DataPolicy):
    @dataclass
    class Params:
        pass

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        return torch.ones(len(batch), dtype=torch.bool)


@register("data_policy", "dynamic_sampling")
class DynamicSampling(DataPolicy):
    reads = frozenset({F.REWARDS, F.GROUP_IDS})

    @dataclass
    class Params:
        pass

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        inv, g = group_inverse(batch.group_ids)
        r = batch.rewards.to(torch.float64)
        hi = torch.full((g,), -float("inf"), dtype=r.dtype).scatter_reduce(0, inv, r, "amax")
        lo = torch.full((g,), float("inf"), dtype=r.dtype).scatter_reduce(0, inv, r, "amin")
        return (hi > lo)[inv]


@dataclass
class _SubsetParams:
    threshold: float = 0.5


@register("data_policy", "psr")
class PositiveSubset(DataPolicy):
    Params = _SubsetParams
    reads = frozenset({F.REWARDS})

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        return batch.rewards > self.params.threshold


@register("data_policy", "nsr")
class NegativeSubset(DataPolicy):
    Params = _SubsetParams
    reads = frozenset({F.REWARDS})

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        return batch.rewards <= self.params.threshold
