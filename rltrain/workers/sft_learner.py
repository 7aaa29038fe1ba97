"""The SFT learner: next-token cross-entropy on the tokens a loss mask marks (the assistant's, the
completion's), on the learner's DeepSpeed code (set-up, micro-batch accumulation, LoRA, ZeRO,
checkpoints, export as a plain HF directory).

Each marked token's loss is weighted by 1 / (the marked tokens of the whole step, every rank's), so
the sum over micro-batches and ranks is the step's mean token loss whatever the split (the driver
sets `weights`). Packed rows (several examples in one row) carry position ids that restart at each
example: transformers then keeps each example's attention to itself (a block-diagonal causal mask
from the position ids), so a packed row computes what its examples would alone. The output layer
runs only at marked positions, a chunk at a time (rltrain/workers/logprobs.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from algorithms.stages.base import wmean
from rltrain.workers.deepspeed_role import DeepSpeedRole, RankSpec
from rltrain.workers.logprobs import HEAD_CHUNK_TOKENS, _chunked_head

__all__ = ["SFTLearner", "TokenBatch", "token_logprobs"]


@dataclass
class TokenBatch:
    """N rows of L tokens, right-padded; `loss_mask` marks tokens to learn, `weights` their loss share."""

    input_ids: torch.Tensor      # (N,L) long
    attention_mask: torch.Tensor  # (N,L) 0/1
    position_ids: torch.Tensor   # (N,L) long; restarts at 0 for each example packed into a row
    loss_mask: torch.Tensor      # (N,L) 0/1: predict this token (never the first of an example)
    weights: torch.Tensor        # (N,L) float: each marked token's share of the step's loss

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def index(self, idx) -> "TokenBatch":
        idx = torch.as_tensor(idx, dtype=torch.long) if not isinstance(idx, slice) else idx
        return TokenBatch(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def to(self, device) -> "TokenBatch":
        return TokenBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def token_logprobs(model: torch.nn.Module, mb: TokenBatch, packed: bool) -> tuple[torch.Tensor, tuple]:
    """(log-prob of each marked token, (rows, cols) where they are). Packed rows go without an attention
    mask, so the position ids alone delimit their examples (padding sits after the last one)."""
    width = int(mb.attention_mask.sum(-1).max())
    rows, cols = mb.loss_mask[:, :width].nonzero(as_tuple=True)
    out = model(input_ids=mb.input_ids[:, :width], position_ids=mb.position_ids[:, :width],
                attention_mask=None if packed else mb.attention_mask[:, :width], use_cache=False,
                output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1][rows, cols - 1]  # the position before a token predicts it
    head = getattr(model, "module", model).get_output_embeddings()
    logp, _ = _chunked_head(head, hidden, mb.input_ids[rows, cols], 1.0, False, HEAD_CHUNK_TOKENS)
    return logp, (rows, cols)


class SFTLearner(DeepSpeedRole):
    """One SFT rank (cross-entropy on the marked tokens). `packed` rows (see the module docstring) are told
    apart by their position ids."""

    def __init__(self, spec: RankSpec, *, packed: bool = False) -> None:
        super().__init__(spec)
        self.packed = bool(packed)

    def _micro_loss(self, mb: TokenBatch) -> tuple[torch.Tensor, dict]:
        logp, where = token_logprobs(self.engine, mb, self.packed)
        w = mb.weights[where]
        return -(logp * w).sum(), {**wmean("sft/loss", -logp.detach(), w), "sft/tokens": float((w > 0).sum())}

    @torch.no_grad()
    def eval_loss(self, batch: TokenBatch, chunk: int = 16) -> tuple[float, float]:
        """(summed negative log-likelihood, marked tokens) of this rank's rows under the current weights."""
        self.engine.eval()
        nll, n = 0.0, 0.0
        for a in range(0, len(batch), chunk):
            logp, _ = token_logprobs(self.engine, batch.index(slice(a, a + chunk)).to(self.device), self.packed)
            nll, n = nll - float(logp.sum()), n + float(logp.numel())
        return nll, n
