"""The preference-optimisation learner: the policy learner's DeepSpeed code (set-up, ZeRO, LoRA, bf16,
micro-batch accumulation, checkpoints, export) with a DPO / IPO / SimPO loss on preference pairs.

A micro-batch's chosen and rejected rows go through the model in one forward (a pair's two rows share
their prompt, which runs once with `learner.share_prompts`); each side's completion log-probs are
summed and the loss of rltrain/dpo/losses.py is taken per pair. Each pair's loss is weighted by
1 / (the step's pairs), so the sum over micro-batches and ranks is the step's mean whatever the split
(`DeepSpeedRole.train_minibatch` turns DeepSpeed's averaging back into sums).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from rltrain.dpo.losses import preference_loss, preference_metrics
from rltrain.workers.deepspeed_role import DeepSpeedRole, RankSpec
from rltrain.workers.logprobs import response_logprobs


@dataclass
class PreferenceBatch:
    """N pairs; side 0 = prompt + chosen, side 1 = prompt + rejected, packed like rollout rows
    (rltrain/workers/logprobs.pack_rows: right-padded, the completion is the "response")."""

    input_ids: torch.Tensor       # (N,2,L) long
    attention_mask: torch.Tensor  # (N,2,L)
    resp_start: torch.Tensor      # (N,2) where each side's completion starts in input_ids
    response_ids: torch.Tensor    # (N,2,T) long, the completion tokens
    response_mask: torch.Tensor   # (N,2,T) float 0/1
    ref_logps: torch.Tensor       # (N,2) the reference's summed completion log-probs (0 when unused)
    weights: torch.Tensor         # (N,) each pair's share of the step's loss (0 on padding pairs)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def index(self, idx) -> "PreferenceBatch":
        idx = torch.as_tensor(idx, dtype=torch.long) if not isinstance(idx, slice) else idx
        return PreferenceBatch(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def to(self, device) -> "PreferenceBatch":
        return PreferenceBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    def rows(self, name: str) -> torch.Tensor:
        """A per-side field as 2N model rows, a pair's chosen row then its rejected row."""
        t = getattr(self, name)
        return t.reshape(2 * len(self), *t.shape[2:])


def completion_logps(model, batch: PreferenceBatch, share_prompts: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed completion log-probs (N,2), completion lengths (N,2)) of both sides under `model`."""
    n = len(batch)
    logp, _ = response_logprobs(model, batch.rows("input_ids"), batch.rows("attention_mask"),
                                batch.rows("resp_start"), batch.rows("response_ids"), 1.0, share_prompts=share_prompts)
    mask = batch.rows("response_mask").to(logp.dtype)
    return (logp * mask).sum(-1).view(n, 2), mask.sum(-1).view(n, 2)


class DPOLearner(DeepSpeedRole):
    """One rank of the policy trained on preference pairs; `dpo` is the `dpo` section as a dict (loss, beta,
    gamma, ipo_token_mean)."""

    def __init__(self, spec: RankSpec, *, dpo: dict) -> None:
        super().__init__(spec)
        self.spec = {"loss": dpo.get("loss", "sigmoid"), "beta": float(dpo.get("beta", 0.1)),
                     "gamma": float(dpo.get("gamma", 0.5)), "token_mean": bool(dpo.get("ipo_token_mean", True))}

    def _micro_loss(self, mb: PreferenceBatch) -> tuple[torch.Tensor, dict]:
        return pair_loss(self.engine, mb, self.spec, self.cfg.share_prompts)

    @torch.no_grad()
    def eval_pairs(self, batch: PreferenceBatch, cuts: list[int]) -> list[dict]:
        """The loss's metrics on held-out pairs, in the chunks `batch[cuts[i]:cuts[i+1]]` (every rank the
        same number: ZeRO-3's gathers are collective), as (sum, weight) for an exact reduction."""
        self.engine.eval()
        out = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            _, m = self._micro_loss(batch.index(torch.arange(a, b)).to(self.device))
            out.append(m)
        return out


def pair_loss(model, mb: PreferenceBatch, spec: dict, share_prompts: bool) -> tuple[torch.Tensor, dict]:
    """A micro-batch's share of the step's loss (sum of weight x pair loss) and its metrics."""
    logps, lens = completion_logps(model, mb, share_prompts)
    ref = mb.ref_logps.to(logps.dtype)
    terms = preference_loss(logps[:, 0], logps[:, 1], lens[:, 0], lens[:, 1], ref[:, 0], ref[:, 1], **spec)
    w = mb.weights.to(terms.losses.dtype)
    return (terms.losses * w).sum(), preference_metrics(terms, logps[:, 0], logps[:, 1], w)
