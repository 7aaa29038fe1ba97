"""A checksum of a model's weights that does not depend on names, order or how tensors are cut.

`sync.verify` compares what an engine serves with what the learners sent. Engines do not keep the
learner's tensors as they are: vLLM fuses q/k/v and gate/up projections into one tensor each, and
shards them under tensor parallelism. So the checksum is a sum over every element of a hash of its bit
pattern (64-bit, wrapping): the same multiset of values in any arrangement gives the same sum, and one
changed value changes it. Exact, not approximate: both sides hash the same dtype (the engines'), so a
tolerance is never needed.
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["weights_checksum"]

_MULT = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed 64-bit integer (Fibonacci hashing)
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _tensor_hash(t: torch.Tensor) -> int:
    """Sum over elements of a mixed hash of each element's bits (int64 arithmetic, wrapping)."""
    flat = t.detach().contiguous().reshape(-1)
    bits = flat.view(_BITS[flat.element_size()]).to(torch.int64)
    if flat.element_size() < 8:
        bits = bits & ((1 << (8 * flat.element_size())) - 1)  # the unsigned bit pattern
    h = bits * _MULT
    h = h ^ (h >> 29)
    h = h * _MULT
    return int(h.sum())


def weights_checksum(named: Iterable[tuple[str, torch.Tensor]], skip: Iterable[str] = ()) -> dict[str, int]:
    """{"hash": sum of element hashes (mod 2^64), "numel": elements} over the named tensors, leaving out the
    names in `skip` (aliases of a tied weight)."""
    skip = set(skip)
    total, numel = 0, 0
    for name, t in named:
        if name in skip:
            continue
        total = (total + _tensor_hash(t)) & ((1 << 64) - 1)
        numel += t.numel()
    return {"hash": total, "numel": numel}
