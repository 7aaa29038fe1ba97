"""The typed update batch every stage reads (DESIGN.md "The common update step").

N sequences x T response tokens, right-padded. `index` and `cat` slice/concatenate every per-row
tensor (including `extra`), which is how the trainer cuts mini-batches, rank shards and micro-batches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

_ROW_FIELDS = ("response_ids", "response_mask", "rewards", "group_ids", "old_logp", "sampling_logp", "ref_logp",
               "entropy", "token_rewards", "turn_ids", "versions", "advantages", "loss_weights")


def _as_index(idx, n: int) -> torch.Tensor:
    if isinstance(idx, slice):
        return torch.arange(n)[idx]
    t = torch.as_tensor(idx)
    if t.dtype == torch.bool:
        if t.numel() != n:
            raise ValueError(f"bool index has {t.numel()} entries for a batch of {n}")
        return t.nonzero(as_tuple=True)[0]
    return t.to(torch.long).reshape(-1)


@dataclass
class RolloutBatch:
    """The full update batch (or a slice of it); see DESIGN.md for the meaning of each field."""

    response_ids: torch.Tensor        # (N,T) long
    response_mask: torch.Tensor       # (N,T) float 0/1, 0 on padding and tool/observation tokens
    rewards: torch.Tensor             # (N,) outcome reward
    group_ids: torch.Tensor           # (N,) long, same id = same prompt in this batch
    prompt_keys: list[str]            # (N) stable across steps
    old_logp: torch.Tensor | None = None
    sampling_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    token_rewards: torch.Tensor | None = None
    turn_ids: torch.Tensor | None = None
    versions: torch.Tensor | None = None
    pad_id: int = 0
    step: int = 0
    advantages: torch.Tensor | None = None
    loss_weights: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.response_ids.shape[0])

    def copy(self) -> "RolloutBatch":
        """Shallow copy with its own `extra` dict (tensors shared)."""
        return dataclasses.replace(self, extra=dict(self.extra), prompt_keys=list(self.prompt_keys))

    def to(self, device: torch.device | str) -> "RolloutBatch":
        """Every tensor (fields and extra) on `device` (no copy for tensors already there)."""
        kw = {n: None if getattr(self, n) is None else getattr(self, n).to(device) for n in _ROW_FIELDS}
        extra = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.extra.items()}
        return RolloutBatch(prompt_keys=self.prompt_keys, pad_id=self.pad_id, step=self.step, extra=extra, **kw)

    def index(self, idx) -> "RolloutBatch":
        """Rows `idx` (LongTensor, list of ints, bool mask or slice) of every per-row field and of `extra`."""
        n = len(self)
        rows = _as_index(idx, n)
        kw = {}
        for name in _ROW_FIELDS:
            t = getattr(self, name)
            kw[name] = None if t is None else t[rows.to(t.device)]
        extra = {}
        for key, t in self.extra.items():
            if isinstance(t, torch.Tensor) and t.dim() >= 1:
                if t.shape[0] != n:
                    raise ValueError(f"extra[{key!r}] has {t.shape[0]} rows, the batch has {n}")
                extra[key] = t[rows.to(t.device)]
            else:
                extra[key] = t
        keys = [self.prompt_keys[i] for i in rows.tolist()]
        return RolloutBatch(prompt_keys=keys, pad_id=self.pad_id, step=self.step, extra=extra, **kw)

    @staticmethod
    def cat(batches: list["RolloutBatch"]) -> "RolloutBatch":
        """Concatenate rows; all batches must have the same T and the same optional fields set."""
        if not batches:
            raise ValueError("RolloutBatch.cat needs at least one batch")
        kw = {}
        for name in _ROW_FIELDS:
            ts = [getattr(b, name) for b in batches]
            if all(t is None for t in ts):
                kw[name] = None
            elif any(t is None for t in ts):
                raise ValueError(f"RolloutBatch.cat: field {name!r} is set in some batches only")
            else:
                kw[name] = torch.cat(ts)
        extra = {}
        for key in batches[0].extra:
            vals = [b.extra.get(key) for b in batches]
            if any(v is None for v in vals):
                raise ValueError(f"RolloutBatch.cat: extra[{key!r}] is set in some batches only")
            extra[key] = torch.cat(vals) if isinstance(vals[0], torch.Tensor) and vals[0].dim() >= 1 else vals[0]
        keys = [k for b in batches for k in b.prompt_keys]
        return RolloutBatch(prompt_keys=keys, pad_id=batches[0].pad_id, step=batches[0].step, extra=extra, **kw)
