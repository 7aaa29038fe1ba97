"""The critic role: a value model V(s_t) on DeepSpeed, with its own optimizer and ranks.

The model is the policy's backbone (or `critic.path`'s) without its output layer, plus a scalar head
initialised to zero (values start at 0). When `critic.path` is a reward model (a sequence classifier
with one output, e.g. launch/train_rm.py's export), the critic starts from the whole reward model:
its backbone and its score head, as InstructGPT initialises the value function from the RM (Ouyang
et al. 2022, sec. 3.5) and OpenRLHF's critic loads its reward model's head. Row layout as the
learner's (rltrain/workers/logprobs.py): the value of the state before response token t is read at
position `resp_start - 1 + t`, the position whose logits predict token t. Its objective is the
clipped value loss (algorithms/ppo.py) against the batch's `returns`, weighted by 1 / (the
mini-batch's response tokens): the sum over
micro-batches and ranks is the token mean of the whole mini-batch whatever the split, the same
invariance the policy loss has. Everything else (DeepSpeed set-up, micro-batch accumulation, the
non-finite skip, checkpoints) is the learner's code.
"""

from __future__ import annotations

import torch

from algorithms.ppo import clipped_value_loss
from algorithms.stages.base import wmean
from rltrain.workers.deepspeed_role import DeepSpeedRole, RankSpec


class ValueModel(torch.nn.Module):
    """A decoder backbone and a linear head (zero, or a reward model's): (N,L) inputs -> (N,L) values."""

    def __init__(self, backbone: torch.nn.Module, hidden_size: int, head: torch.nn.Linear | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        if head is not None:  # a reward model's score head: (1, hidden) weight, bias or none
            with torch.no_grad():
                self.value_head.weight.copy_(head.weight)
                if head.bias is not None:
                    self.value_head.bias.copy_(head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()


def build_value_model(path: str, attn_implementation: str | None = None) -> ValueModel:
    """A causal LM directory: its backbone and a zero head. A one-output sequence classifier (a reward
    model): its backbone and its score head, so V(s) starts as the reward model's score of s."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(path)
    kw = dict(dtype=torch.float32, attn_implementation=attn_implementation)
    if not any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
        backbone = AutoModel.from_pretrained(path, **kw)
        return ValueModel(backbone, backbone.config.hidden_size)
    rm = AutoModelForSequenceClassification.from_pretrained(path, **kw)
    head = getattr(rm, "score", None)
    if not isinstance(head, torch.nn.Linear) or head.out_features != 1:
        raise ValueError(f"critic.path {path!r} is a sequence classifier but not a reward model with one "
                         f"output (a `score` head of 1 output); got {head!r}")
    return ValueModel(rm.base_model, config.hidden_size, head)


def response_values(model: torch.nn.Module, batch) -> torch.Tensor:
    """(N,T) V(s_t) for each response token of `batch` (0 past each row's response)."""
    n, t = batch.response_ids.shape
    lengths = batch.attention_mask.sum(-1)
    width = int(lengths.max())
    values = model(batch.input_ids[:, :width], batch.attention_mask[:, :width])
    resp_len = (lengths - batch.resp_start).clamp(0, t)
    rows, cols = (torch.arange(t, device=resp_len.device).view(1, -1) < resp_len.view(-1, 1)).nonzero(as_tuple=True)
    pos = (batch.resp_start[rows] - 1 + cols).clamp(0, width - 1)
    return values.new_zeros((n, t)).index_put((rows, cols), values[rows, pos])


class Critic(DeepSpeedRole):
    """One critic rank: the value model's DeepSpeed role; `value_clip` is its objective's clip range."""

    def __init__(self, spec: RankSpec, *, value_clip: float) -> None:
        super().__init__(spec)
        self.value_clip = float(value_clip)

    def _build_model(self, model_path: str) -> torch.nn.Module:
        return build_value_model(model_path, self.cfg.attn_implementation)

    @torch.no_grad()
    def compute_values(self, batch) -> torch.Tensor:
        """V(s_t) of this rank's shard under the current weights, in micro-batches."""
        from rltrain.workers.sharding import inference_chunks

        self.engine.eval()
        out = torch.zeros(batch.response_ids.shape)
        for idx in inference_chunks(batch, self.cfg.micro_batch_size, self.cfg.max_tokens_per_micro_batch):
            out[idx] = response_values(self.engine, batch.index(idx).to(self.device)).cpu()
        return out

    def _micro_loss(self, mb) -> tuple[torch.Tensor, dict]:
        values = response_values(self.engine, mb)
        per_token, clipped = clipped_value_loss(values, mb.values, mb.returns, self.value_clip)
        w = mb.loss_weights  # mask / the mini-batch's response tokens (driver), 0 on padding rows
        metrics = {**wmean("critic/value_loss", per_token, w), **wmean("critic/clipfrac", clipped, w),
                   **wmean("critic/values_mean_train", values, w)}
        return (per_token * w).sum(), metrics
