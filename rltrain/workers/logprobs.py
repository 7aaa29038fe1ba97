"""Log-probabilities (and entropies) of response tokens under a causal LM.

Shared by the learner (old log-probs and the update forward) and the reference actor. A row of
the model input is `prompt ids + response ids + padding` (right-padded); `resp_start[i]` is where
row i's response begins, so position `resp_start[i] - 1 + t` predicts response token t.

With `share_prompts`, rows of a micro-batch that share a prompt (a GRPO group's samples) run that
prompt through the model once: the unique prompts first (their keys/values kept), then every row's
response attends to its prompt's cached keys/values, the gradient flowing back into the one prompt
pass. Same log-probs and gradients as one row at a time, on fewer tokens (SmolLM2's chat prompts are
~66 of the ~180 tokens of a word-problem row).
"""

from __future__ import annotations

import torch


# response tokens per pass through the output layer: the fp32 logits of a chunk (128 x a 49k vocabulary =
# 25 MB) stay small enough for the allocator to reuse their memory instead of faulting in new pages
HEAD_CHUNK_TOKENS = 128


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    resp_start: torch.Tensor,
    response_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = HEAD_CHUNK_TOKENS,
    share_prompts: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (logp (N,T), entropy (N,T) or None) of `response_ids` given the full rows.

    Only what is needed is computed: the model runs on the columns up to the longest row (a
    micro-batch of short rows does not pay for the batch's width); the output layer runs on response
    positions only (not the prompt, not padding), `chunk_tokens` at a time, each chunk's
    full-vocabulary logits recomputed in the backward instead of kept (activation checkpointing).
    With `share_prompts`, a prompt that several rows share runs once (module docstring; not under
    gradient checkpointing, which drops the keys/values).
    Positions past a row's response hold 0."""
    n, t = response_ids.shape
    lengths = attention_mask.sum(-1)
    resp_len = (lengths - resp_start).clamp(0, t)
    rows, cols = (torch.arange(t, device=resp_len.device).view(1, -1) < resp_len.view(-1, 1)).nonzero(as_tuple=True)
    module = getattr(model, "module", model)  # through DeepSpeed's wrapper
    # transformers drops the cache under gradient checkpointing: then every row runs its own prompt
    checkpointing = module.training and getattr(module, "is_gradient_checkpointing", False)
    prompts = _unique_prompts(input_ids, resp_start) if share_prompts and not checkpointing else None
    if prompts is not None:
        hidden = _shared_prompt_hidden(model, input_ids, resp_start, resp_len, *prompts)  # (n, T): predicts token t
        picked = hidden[rows, cols]
    else:
        width = int(lengths.max())
        out = model(input_ids=input_ids[:, :width], attention_mask=attention_mask[:, :width], use_cache=False,
                    output_hidden_states=True, logits_to_keep=1)
        hidden = out.hidden_states[-1]  # after the final norm: what the output layer reads
        picked = hidden[rows, (resp_start[rows] - 1 + cols).clamp(0, width - 1)]
    head = module.get_output_embeddings()
    logp, entropy = _chunked_head(head, picked, response_ids[rows, cols], temperature, with_entropy, chunk_tokens)
    full = hidden.new_zeros((n, t), dtype=torch.float32)
    return (full.index_put((rows, cols), logp),
            full.index_put((rows, cols), entropy) if entropy is not None else None)


def _unique_prompts(input_ids: torch.Tensor, resp_start: torch.Tensor) -> tuple[torch.Tensor, list[int]] | None:
    """(which unique prompt each row has (N,), one row index per unique prompt), or None when no two
    rows share a prompt (nothing to save)."""
    ids, starts = input_ids.cpu(), resp_start.cpu().tolist()
    first: dict[bytes, int] = {}
    which = [first.setdefault(ids[i, :starts[i]].numpy().tobytes(), len(first)) for i in range(len(starts))]
    if len(first) == len(starts):
        return None
    return torch.tensor(which, device=input_ids.device), [which.index(k) for k in range(len(first))]


def _shared_prompt_hidden(model: torch.nn.Module, input_ids: torch.Tensor, resp_start: torch.Tensor,
                          resp_len: torch.Tensor, which: torch.Tensor, owners: list[int]) -> torch.Tensor:
    """Final hidden states (N, T, d) that predict each row's response token t: the unique prompts run
    once (right-padded, keys/values kept), then the responses attend to their prompt's keys/values at
    their true positions (padding slots of shorter prompts masked)."""
    owners_t = torch.tensor(owners, device=input_ids.device)
    p_len = resp_start[owners_t]
    p_width, t = int(p_len.max()), int(resp_len.max())
    cols = torch.arange(p_width, device=input_ids.device)
    p_mask = (cols.view(1, -1) < p_len.view(-1, 1)).long()
    out = model(input_ids=input_ids[owners_t, :p_width] * p_mask, attention_mask=p_mask, use_cache=True,
                output_hidden_states=True, logits_to_keep=1)
    last_prompt = out.hidden_states[-1][torch.arange(len(owners), device=p_len.device), p_len - 1]  # (U, d)
    cache = out.past_key_values
    cache.reorder_cache(which)  # each row gets its prompt's keys/values (an index_select: differentiable)
    steps = torch.arange(t, device=input_ids.device).view(1, -1)
    gather = (resp_start.view(-1, 1) + steps).clamp(max=input_ids.shape[1] - 1)
    r_mask = (steps < resp_len.view(-1, 1)).long()
    r_ids = input_ids.gather(1, gather) * r_mask
    out = model(input_ids=r_ids, attention_mask=torch.cat([p_mask[which], r_mask], 1), past_key_values=cache,
                position_ids=resp_start.view(-1, 1) + steps, use_cache=True, output_hidden_states=True,
                logits_to_keep=1)
    return torch.cat([last_prompt[which].unsqueeze(1), out.hidden_states[-1][:, :-1]], 1)


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
