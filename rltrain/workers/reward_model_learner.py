"""The reward-model learner: a sequence classifier (a causal LM's backbone with a scalar head)
trained on preference pairs with the Bradley-Terry loss (algorithms/ppo.py), on the learner's
DeepSpeed code (set-up, micro-batch accumulation, checkpoints, export as a plain HF directory).

Each pair's loss is weighted by 1 / (the step's pairs), so the sum over micro-batches and ranks is
the step's mean whatever the split. The score of a text is the head's logit at its last token,
what `AutoModelForSequenceClassification` (and so the `reward_model` reward, TRL and verl) reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from algorithms.ppo import bradley_terry_loss
from algorithms.stages.base import wmean
from rltrain.workers.deepspeed_role import DeepSpeedRole


@dataclass
class PairBatch:
    """N preference pairs, each side right-padded to its own width."""

    chosen_ids: torch.Tensor       # (N,Lc) long
    chosen_mask: torch.Tensor      # (N,Lc)
    rejected_ids: torch.Tensor     # (N,Lr) long
    rejected_mask: torch.Tensor    # (N,Lr)
    weights: torch.Tensor          # (N,) each pair's share of the step's loss (0 on padding pairs)

    def __len__(self) -> int:
        return int(self.chosen_ids.shape[0])

    def index(self, idx) -> "PairBatch":
        idx = torch.as_tensor(idx, dtype=torch.long) if not isinstance(idx, slice) else idx
        return PairBatch(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def to(self, device) -> "PairBatch":
        return PairBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


class RewardModelLearner(DeepSpeedRole):
    """One reward-model rank: a sequence classifier with one output trained on Bradley-Terry pairs."""

    def _build_model(self, model_path: str) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=1, dtype=torch.float32, attn_implementation=self.cfg.attn_implementation)
        if model.config.pad_token_id is None:
            tok = AutoTokenizer.from_pretrained(model_path)
            model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return model

    def _scores(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        width = int(mask.sum(-1).max())
        return self.engine(input_ids=ids[:, :width], attention_mask=mask[:, :width]).logits[:, 0].float()

    def _micro_loss(self, mb: PairBatch) -> tuple[torch.Tensor, dict]:
        chosen, rejected = self._scores(mb.chosen_ids, mb.chosen_mask), self._scores(mb.rejected_ids, mb.rejected_mask)
        loss = bradley_terry_loss(chosen, rejected)
        w = mb.weights
        metrics = {**wmean("rm/loss", loss, w), **wmean("rm/train_accuracy", (chosen > rejected).float(), w),
                   **wmean("rm/train_margin", chosen - rejected, w)}
        return (loss * w).sum(), metrics

    @torch.no_grad()
    def score_pairs(self, batch: PairBatch, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen scores, rejected scores) of every pair under the current weights."""
        self.engine.eval()
        out_c, out_r = [], []
        for a in range(0, len(batch), chunk):
            mb = batch.index(slice(a, a + chunk)).to(self.device)
            out_c.append(self._scores(mb.chosen_ids, mb.chosen_mask).cpu())
            out_r.append(self._scores(mb.rejected_ids, mb.rejected_mask).cpu())
        return torch.cat(out_c), torch.cat(out_r)
