"""Preference pairs -> token ids -> the packed batches the learners and the reference read.

Rendering. A pair's prompt is rendered as launch/grpo.py renders prompts for generation
(`rltrain.data.datasets.render_prompt`: plain text as it is; chat messages through the tokenizer's chat
template with the generation prompt, or a "role: content" transcript without one), so the policy is
trained on the contexts it is later sampled from. Prompt + completion is, for chat messages with a chat
template, the template over prompt + completion messages (as the `reward_model` reward and TRL render
them); otherwise the rendered prompt followed by the completion's text, and the tokenizer's EOS id is
appended unless the completion already ends with it (TRL adds EOS to non-chat completions; the policy
learns to stop).

The split. Each side is tokenized once as a whole (prompt + completion) and the prompt once alone, with
special tokens as the generation path adds them (none for chat prompts). The completion is the tokens
after the prompt's, and only when the prompt's ids are a prefix of the whole's; otherwise (a template
that renders the prompt differently when a reply follows, or a token that merges across the boundary)
the pair fails naming it: text is never re-tokenized piece by piece. Over `max_length` tokens the
completion keeps its first `max_length - 1` tokens and the prompt loses tokens from the left.
"""

from __future__ import annotations

from typing import Any

import torch

from algorithms import RolloutBatch
from rltrain.data.datasets import DataError, render_prompt
from rltrain.rm.preferences import PreferencePair
from rltrain.workers.dpo_learner import PreferenceBatch
from rltrain.workers.logprobs import pack_rows

Side = tuple[list[int], list[int]]  # (prompt ids, completion ids)


def render_side(tokenizer: Any, prompt: Any, completion: Any) -> tuple[str, str, bool]:
    """(prompt text, prompt + completion text, whether a chat template rendered both)."""
    from rewards._text import completion_text

    head = render_prompt(prompt, tokenizer)
    if isinstance(prompt, list) and isinstance(completion, list) and getattr(tokenizer, "chat_template", None):
        return head, tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False), True
    return head, head + completion_text(completion), False


def split_side(tokenizer: Any, prompt: Any, completion: Any, where: str) -> Side:
    """(prompt ids, completion ids) of one side, by the checked prefix split (module docstring)."""
    head, full, templated = render_side(tokenizer, prompt, completion)
    special = isinstance(prompt, str)  # as the rollout tokenizes prompts (rltrain/driver/flow/rollout.py)
    p = tokenizer(head, add_special_tokens=special)["input_ids"]
    ids = tokenizer(full, add_special_tokens=special)["input_ids"]
    if ids[:len(p)] != p:
        at = next((i for i, (a, b) in enumerate(zip(p, ids)) if a != b), min(len(p), len(ids)))
        raise DataError(f"{where}: the prompt's tokens are not a prefix of the prompt + completion's tokens (they "
                        f"differ at token {at}: {tokenizer.decode(p[at:at + 8])!r} vs {tokenizer.decode(ids[at:at + 8])!r});"
                        " the completion cannot be cut from it. End the prompt on a token boundary, or use a chat "
                        "template that renders the prompt the same way with and without the reply")
    completion_ids = ids[len(p):]
    eos = tokenizer.eos_token_id
    if not templated and eos is not None and (not completion_ids or completion_ids[-1] != eos):
        completion_ids = completion_ids + [eos]
    if not completion_ids:
        raise DataError(f"{where}: the completion has no tokens")
    return p, completion_ids


def truncate(side: Side, max_length: int) -> tuple[Side, bool]:
    p, c = side
    if len(p) + len(c) <= max_length:
        return side, False
    c = c[:max_length - 1]
    return (p[len(p) - (max_length - len(c)):], c), True


def encode_pairs(tokenizer: Any, pairs: list[PreferencePair], max_length: int, split: str) -> tuple[list[tuple[Side, Side]], int]:
    """Each pair as its (chosen side, rejected side), and how many sides were truncated."""
    out, cut = [], 0
    for i, pair in enumerate(pairs):
        where = f"{split} pair {i} (prompt {str(pair.prompt)!r:.70})"
        sides = []
        for name, completion in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            side, was_cut = truncate(split_side(tokenizer, pair.prompt, completion, f"{where}, {name}"), max_length)
            sides.append(side)
            cut += was_cut
        out.append((sides[0], sides[1]))
    return out, cut


def pack_pairs(encoded: list[tuple[Side, Side]], idx: list[int], ref_logps: torch.Tensor | None,
               weights: torch.Tensor, pad_id: int) -> PreferenceBatch:
    """Pairs `idx` packed as 2 rows each (chosen, rejected); `ref_logps` (len(idx), 2) or None (zeros)."""
    sides = [s for i in idx for s in encoded[i]]
    packed = pack_rows([p for p, _ in sides], [c for _, c in sides], pad_id)
    n = len(idx)
    per_pair = {k: v.view(n, 2, *v.shape[1:]) for k, v in packed.items()}
    ref = torch.zeros(n, 2) if ref_logps is None else ref_logps.float()
    return PreferenceBatch(ref_logps=ref, weights=weights.float(), **per_pair)


def reference_rows(batch: PreferenceBatch, pad_id: int) -> RolloutBatch:
    """The pairs' 2N rows as the rollout batch the reference actor reads (a pair = a group: its prompt
    runs once when the reference shares prompts)."""
    n = len(batch)
    return RolloutBatch(response_ids=batch.rows("response_ids"), response_mask=batch.rows("response_mask"),
                        rewards=torch.zeros(2 * n), group_ids=torch.arange(n).repeat_interleave(2),
                        prompt_keys=[f"pair{i // 2}" for i in range(2 * n)], input_ids=batch.rows("input_ids"),
                        attention_mask=batch.rows("attention_mask"), resp_start=batch.rows("resp_start"), pad_id=pad_id)


def summed(logp: torch.Tensor, batch: PreferenceBatch) -> torch.Tensor:
    """Per-token log-probs of `reference_rows(batch)` -> (N, 2) sums over each side's completion."""
    return (logp * batch.rows("response_mask")).sum(-1).view(len(batch), 2)
