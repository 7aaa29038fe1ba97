"""A lean sampling loop for causal LMs on transformers modules (the transformers engine's default).

Token-in/token-out like `generate`, but doing only the work sampling needs. Measured on the 2-core
CPU with SmolLM2-135M in bf16, 32 sequences, 100-token prompts (docs/benchmarks.md, speed section),
`generate` spent its decode steps on:
  - concatenating the growing KV cache every step (half the step at 150 tokens of context): here a
    pre-allocated cache (`transformers.StaticCache`) is written in place;
  - repeating the K/V heads for grouped-query attention before each product: here one query token
    attends by reshaping the query heads into (kv head, repeat) groups, without copying K/V, and
    reads only the cache slots written so far (a static cache spans the whole budget);
  - sampling with `torch.multinomial` over the full vocabulary (30 ms a step for 32 x 49k): here by
    inverse CDF, one uniform number per row and a binary search in the cumulative probabilities;
  - keeping full-vocabulary scores for every step to compute log-probs at the end: here only the
    chosen token's log-probability is kept;
  - prefilling a group's prompt once per sample: here once per distinct prompt, its keys/values copied
    to the group's rows;
  - decoding rows that have already stopped (a batch runs as long as its longest answer): here
    stopped rows leave the batch, cache rows included.
Prompts are left-padded; position ids count real tokens (as `generate` does), so each row sees the
positions the learner's right-padded forward gives it.

Device (issue #28, finding 3): the loop runs where the model's parameters are. Every tensor it builds
(prompt ids and masks, the KV cache, the random numbers, from a generator on that device) is made
there; the prompts (and the stop ids) go to the device at the start of a call, before any work is
queued, and the results stay there (the engine takes them to the host in one copy). Inside the loop
the host reads one number a step: how many rows have stopped, which decides whether the loop ends and
whether stopped rows leave the batch (both change what is launched next, so the host must know them).
Everything else the host needs it computes itself: the decode attention's count of written cache
slots is the prompt width + the step (was a GPU -> host read in every layer of every step), the cache
position is a slice of one position tensor (was a new host tensor copied to the device each step),
the rows kept after a compaction come from a sort of the stopped flags whose length the host knows
(was `nonzero`, a read), and the cache rows are selected directly (transformers' `reorder_cache`
reads the cache length back in every layer).
"""

from __future__ import annotations

import torch

ATTENTION = "rltrain_lean"
READ_WRITTEN_SLOTS_ONLY = True  # decode attention skips the static cache's unwritten tail (off: benchmarks only)


def gqa_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of the registered implementation: several query tokens (prefill) go through
    transformers' SDPA path; one query token per row (decode) attends by grouped reshape, over the
    first `lean_written_slots` cache slots when the caller passes that count (the decode loop does: the
    static cache's unwritten tail is not read), else over the whole cache."""
    written = kwargs.pop("lean_written_slots", None)
    if query.shape[2] != 1:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    b, heads, _, d = query.shape
    kv_heads = key.shape[1]
    q = query.view(b, kv_heads, heads // kv_heads, d)
    scale = scaling if scaling is not None else d ** -0.5
    if written is not None and READ_WRITTEN_SLOTS_ONLY:  # slots no row has written yet are not read
        key, value = key[:, :, :written], value[:, :, :written]
    mask = None
    if attention_mask is not None:  # bool (b, 1, 1, kv length): True = attend
        mask = attention_mask[..., : key.shape[2]].reshape(b, 1, 1, -1)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # (b, kv heads, repeat, kv length)
    if mask is not None:
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
                uniform: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token (B,), its log-prob under the sampling distribution (B,)) from last-position logits.
    Greedy: argmax, log-prob under softmax(logits) (as `generate` reports it). Sampled: softmax of
    logits / temperature, drawn by inverse CDF with `uniform` (B, 1), numbers in [0, 1)."""
    logits = logits.float()
    if greedy:
        logp = logits.log_softmax(-1)
        tok = logp.argmax(-1)
    else:
        logp = (logits / temperature).log_softmax(-1)
        cdf = logp.exp().cumsum(-1)
        u = uniform * cdf[:, -1:]
        # first index whose cumulative probability exceeds u: zero-probability tokens are never drawn
        tok = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)
    return tok, logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1)


COMPACT_FRACTION = 0.125  # drop stopped rows from the batch once they are this share of the rows still decoded


@torch.no_grad()
def sample(model: torch.nn.Module, rows: list[list[int]], max_new_tokens: int, temperature: float, greedy: bool,
           stop_ids: list[int], pad_id: int, seed: int,
           compact_fraction: float = COMPACT_FRACTION, share_prompts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate up to `max_new_tokens` after each row: (tokens (B, S), log-probs (B, S)), S <= max_new_tokens,
    on the model's device (the loop ends when every row has emitted a stop id; later positions of a stopped
    row hold `pad_id`).

    Work that sampling does not need is skipped: rows with the same prompt (a group's samples) prefill it
    once and copy its keys/values (`share_prompts`); rows that have stopped leave the batch (their cache
    rows too) once they are `compact_fraction` of it (`inf`: never). The random numbers are drawn for every
    row at every step either way, so each row samples what it would in the full batch; they come from a
    generator on the model's device seeded with `seed` (the same seed gives the same tokens on one device;
    a CPU and a CUDA generator draw different numbers)."""
    from transformers import StaticCache

    device = next(model.parameters()).device
    b, width = len(rows), max(len(r) for r in rows)
    total = width + max_new_tokens
    unique, which = _distinct_prompts(rows, share_prompts)
    # the prompts' ids and masks reach the device in one copy, before any work is queued
    ids, prompt_mask = torch.tensor([[[pad_id] * (width - len(r)) + r for r in unique],
                                     [[0] * (width - len(r)) + [1] * len(r) for r in unique]], device=device)
    which = torch.tensor(which, device=device)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    slots = torch.arange(total, device=device)  # cache positions (older transformers read them)
    with torch.device(device):  # its length counter is made on the device (not copied there in every layer);
        cache = StaticCache(config=model.config, max_cache_len=total)  # keys/values: on the first keys' device
    out = model(input_ids=ids, attention_mask=_widen(prompt_mask, max_new_tokens),
                position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0), past_key_values=cache,
                cache_position=slots[:width], logits_to_keep=1, use_cache=True)
    logits = out.logits[:, -1][which]
    if len(unique) < b:
        _select_rows(cache, which)  # every row gets its prompt's keys/values
    mask = _widen(prompt_mask[which], max_new_tokens)  # (b, total): 1 on real prompt tokens and on tokens generated
    next_pos = mask[:, :width].sum(-1)
    generator = torch.Generator(device=device).manual_seed(seed)
    tokens = torch.full((b, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((b, max_new_tokens), device=device)
    live = torch.arange(b, device=device)  # the original rows still in the batch
    done = torch.zeros(b, dtype=torch.bool, device=device)  # of the rows in the batch
    t = -1
    for t in range(max_new_tokens):
        uniform = torch.rand((b, 1), generator=generator, device=device)[live] if not greedy else None
        tok, lp = pick_tokens(logits, temperature, greedy, uniform)
        tok = tok.masked_fill(done, pad_id)
        tokens[live, t], logps[live, t] = tok, lp.masked_fill(done, 0.0)
        done |= torch.isin(tok, stops)
        if t == max_new_tokens - 1:
            break
        n_live = len(live)  # a shape: known on the host
        n_done = int(done.sum())  # the step's one read from the device (module docstring)
        if n_done == n_live:
            break
        if n_done >= max(1.0, compact_fraction * n_live):
            # the rows still decoding, in order: a stable sort puts the not-done flags (0) first
            keep = torch.argsort(done.to(torch.uint8), stable=True)[: n_live - n_done]
            _select_rows(cache, keep)
            live, done, mask, next_pos, tok = live[keep], done[keep], mask[keep], next_pos[keep], tok[keep]
        mask[:, width + t] = 1
        out = model(input_ids=tok.unsqueeze(-1), attention_mask=mask, position_ids=(next_pos + t).unsqueeze(-1),
                    past_key_values=cache, cache_position=slots[width + t: width + t + 1], use_cache=True,
                    lean_written_slots=width + t + 1)
        logits = out.logits[:, -1]
    return tokens[:, : t + 1], logps[:, : t + 1]


def _select_rows(cache, index: torch.Tensor) -> None:
    """Keep (or repeat) the cache's batch rows `index`, in every layer, without reading anything back
    (`Cache.reorder_cache` does the same after checking each layer's length on the host)."""
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)


def _distinct_prompts(rows: list[list[int]], share: bool) -> tuple[list[list[int]], list[int]]:
    """(the prompts to prefill, each row's index among them): distinct prompts once with `share`, else every row."""
    slot: dict[tuple[int, ...] | int, int] = {}
    which = [slot.setdefault(tuple(r) if share else i, len(slot)) for i, r in enumerate(rows)]
    unique = [rows[which.index(k)] for k in range(len(slot))]
    return unique, which


def _widen(mask: torch.Tensor, columns: int) -> torch.Tensor:
    return torch.cat([mask, mask.new_zeros(mask.shape[0], columns)], 1)
