"""Log-probabilities (and entropies) of response tokens under a causal LM.

Shared by the learner (old log-probs and the update forward) and the reference actor. A row of
the model input is `prompt ids + response ids + padding` (right-padded); `resp_start[i]` is where
row i's response begins, so position `resp_start[i] - 1 + t` predicts response token t.
"""

from __future__ import annotations

import torch


HEAD_CHUNK_TOKENS = 128  # response tokens per pass through the output layer (fp32 logits of 128 x 49k
# vocabulary = 25 MB: small enough for the allocator to reuse; 1024-token chunks page-faulted ~1M times a
# micro-batch and ran 1.5x slower on SmolLM2)


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    resp_start: torch.Tensor,
    response_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = HEAD_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (logp (N,T), entropy (N,T) or None) of `response_ids` given the full rows.

    Only what is needed is computed: the model runs on the columns up to the longest row (a
    micro-batch of short rows does not pay for the batch's width); the output layer runs on response
    positions only (not the prompt, not padding), `chunk_tokens` at a time, each chunk's
    full-vocabulary logits recomputed in the backward instead of kept (activation checkpointing).
    Positions past a row's response hold 0."""
    n, t = response_ids.shape
    lengths = attention_mask.sum(-1)
    width = int(lengths.max())
    out = model(input_ids=input_ids[:, :width], attention_mask=attention_mask[:, :width], use_cache=False,
                output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1]  # after the final norm: what the output layer reads
    resp_len = (lengths - resp_start).clamp(0, t)
    rows, cols = (torch.arange(t, device=resp_len.device).view(1, -1) < resp_len.view(-1, 1)).nonzero(as_tuple=True)
    pos = (resp_start[rows] - 1 + cols).clamp(0, width - 1)
    head = getattr(model, "module", model).get_output_embeddings()  # through DeepSpeed's wrapper
    logp, entropy = _chunked_head(head, hidden[rows, pos], response_ids[rows, cols], temperature, with_entropy,
                                  chunk_tokens)
    full = hidden.new_zeros((n, t), dtype=torch.float32)
    return (full.index_put((rows, cols), logp),
            full.index_put((rows, cols), entropy) if entropy is not None else None)


def _head_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
                   with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    if getattr(head, "bias", None) is None:  # a linear map: logits / T = head(hidden / T), on the smaller tensor
        logits = head(hidden / temperature if temperature != 1.0 else hidden).float()
    else:
        logits = head(hidden).float() / temperature
    logp_all = logits.log_softmax(-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp, (-(logp_all.exp() * logp_all).sum(-1) if with_entropy else None)


def _chunked_head(head, hidden, targets, temperature, with_entropy, chunk_tokens):
    from torch.utils.checkpoint import checkpoint

    parts = []
    for a in range(0, max(1, len(targets)), chunk_tokens):
        args = (head, hidden[a:a + chunk_tokens], targets[a:a + chunk_tokens], temperature, with_entropy)
        parts.append(checkpoint(_head_logprobs, *args, use_reentrant=False) if torch.is_grad_enabled()
                     else _head_logprobs(*args))
    logp = torch.cat([p[0] for p in parts])
    return logp, (torch.cat([p[1] for p in parts]) if with_entropy else None)


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
