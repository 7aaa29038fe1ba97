"""Log-probabilities (and entropies) of response tokens under a causal LM.

Shared by the learner (old log-probs and the update forward) and the reference actor. A row of
the model input is `prompt ids + response ids + padding` (right-padded); `resp_start[i]` is where
row i's response begins, so position `resp_start[i] - 1 + t` predicts response token t.
"""

from __future__ import annotations

import torch


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    resp_start: torch.Tensor,
    response_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (logp (N,T), entropy (N,T) or None) of `response_ids` given the full rows."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    n, t = response_ids.shape
    pos = (resp_start.view(-1, 1) - 1 + torch.arange(t, device=resp_start.device).view(1, -1))
    pos = pos.clamp(0, logits.shape[1] - 1)
    picked = logits.gather(1, pos.unsqueeze(-1).expand(n, t, logits.shape[-1])).float()
    logp_all = torch.log_softmax(picked / temperature, dim=-1)
    logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def pack_rows(
    prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Model inputs for (prompt, response) pairs: input_ids, attention_mask (N,L), resp_start (N,)
    and the right-padded response_ids / response_mask (N,T)."""
    n = len(prompt_ids)
    width = max(len(p) + len(r) for p, r in zip(prompt_ids, response_ids))
    t = max(1, max(len(r) for r in response_ids))
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    resp = torch.full((n, t), pad_id, dtype=torch.long)
    resp_mask = torch.zeros((n, t), dtype=torch.float32)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        row = p + r
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
        resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        resp_mask[i, : len(r)] = 1.0
    resp_start = torch.tensor([len(p) for p in prompt_ids], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "resp_start": resp_start,
            "response_ids": resp, "response_mask": resp_mask}
