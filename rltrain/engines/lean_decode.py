"""A lean sampling loop for causal LMs on transformers modules (the transformers engine's default).

Token-in/token-out like `generate`, but doing only the work sampling needs. Measured on the 2-core
CPU with SmolLM2-135M in bf16, 32 sequences, 100-token prompts (docs/benchmarks.md, speed section),
`generate` spent its decode steps on:
  - concatenating the growing KV cache every step (half the step at 150 tokens of context): here a
    pre-allocated cache (`transformers.StaticCache`) is written in place;
  - repeating the K/V heads for grouped-query attention before each product: here one query token
    attends by reshaping the query heads into (kv head, repeat) groups, without copying K/V;
  - sampling with `torch.multinomial` over the full vocabulary (30 ms a step for 32 x 49k): here by
    inverse CDF, one uniform number per row and a binary search in the cumulative probabilities;
  - keeping full-vocabulary scores for every step to compute log-probs at the end: here only the
    chosen token's log-probability is kept.
Prompts are left-padded; position ids count real tokens (as `generate` does), so each row sees the
positions the learner's right-padded forward gives it.
"""

from __future__ import annotations

import torch

ATTENTION = "rltrain_lean"


def gqa_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of the registered implementation: several query tokens (prefill) go through
    transformers' SDPA path; one query token per row (decode) attends by grouped reshape."""
    if query.shape[2] != 1:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    b, heads, _, d = query.shape
    kv_heads = key.shape[1]
    q = query.view(b, kv_heads, heads // kv_heads, d)
    scale = scaling if scaling is not None else d ** -0.5
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # (b, kv heads, repeat, kv length)
    if attention_mask is not None:  # bool (b, 1, 1, kv length): True = attend
        mask = attention_mask[..., : key.shape[2]].reshape(b, 1, 1, -1)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    out = torch.matmul(scores.softmax(-1).to(value.dtype), value)  # (b, kv heads, repeat, d)
    return out.reshape(b, 1, heads, d), None


def register_attention() -> str:
    """Register the attention (and its mask: transformers' SDPA boolean mask) once; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(ATTENTION, gqa_attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION


def pick_tokens(logits: torch.Tensor, temperature: float, greedy: bool,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token (B,), its log-prob under the sampling distribution (B,)) from last-position logits.
    Greedy: argmax, log-prob under softmax(logits) (as `generate` reports it). Sampled: softmax of
    logits / temperature, drawn by inverse CDF."""
    logits = logits.float()
    if greedy:
        logp = logits.log_softmax(-1)
        tok = logp.argmax(-1)
    else:
        logp = (logits / temperature).log_softmax(-1)
        cdf = logp.exp().cumsum(-1)
        u = torch.rand(logits.shape[0], 1, generator=generator) * cdf[:, -1:]
        # first index whose cumulative probability exceeds u: zero-probability tokens are never drawn
        tok = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)
    return tok, logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample(model: torch.nn.Module, rows: list[list[int]], max_new_tokens: int, temperature: float, greedy: bool,
           stop_ids: list[int], pad_id: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate up to `max_new_tokens` after each row: (tokens (B, S), log-probs (B, S)), S <= max_new_tokens
    (the loop ends when every row has emitted a stop id; later positions of a stopped row hold `pad_id`)."""
    from transformers import StaticCache

    b, width = len(rows), max(len(r) for r in rows)
    total = width + max_new_tokens
    mask = torch.zeros((b, total), dtype=torch.long)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r): width] = 1
    positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
    cache = StaticCache(config=model.config, max_cache_len=total)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                cache_position=torch.arange(width), logits_to_keep=1, use_cache=True)
    next_pos = mask[:, :width].sum(-1)
    generator = torch.Generator().manual_seed(seed)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    tokens = torch.full((b, max_new_tokens), pad_id, dtype=torch.long)
    logps = torch.zeros((b, max_new_tokens))
    done = torch.zeros(b, dtype=torch.bool)
    for t in range(max_new_tokens):
        tok, lp = pick_tokens(out.logits[:, -1], temperature, greedy, generator)
        tok = tok.masked_fill(done, pad_id)
        tokens[:, t], logps[:, t] = tok, lp.masked_fill(done, 0.0)
        done |= torch.isin(tok, stops)
        if bool(done.all()) or t == max_new_tokens - 1:
            return tokens[:, : t + 1], logps[:, : t + 1]
        mask[:, width + t] = 1
        out = model(input_ids=tok.unsqueeze(-1), attention_mask=mask, position_ids=(next_pos + t).unsqueeze(-1),
                    past_key_values=cache, cache_position=torch.tensor([width + t]), use_cache=True)
    return tokens, logps
