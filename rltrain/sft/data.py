"""SFT examples -> token ids and a loss mask, from the text each example renders to, tokenized once.

Two row formats (TRL's):
- prompt / completion: text (`prompt`, `completion`) or chat messages (`prompt` a list of messages,
  `completion` the assistant's), the loss on the completion only;
- conversation: `messages`, the loss on every assistant message.

A conversation is rendered by the tokenizer's chat template into one text. Each assistant message's
span in it is found by rendering the conversation up to that message (with the generation prompt: the
span starts there) and up to its end; the text is tokenized once with character offsets, and a token
takes loss when it starts inside an assistant span. Nothing is tokenized piece by piece, so the ids
are exactly those of the whole text. A template whose render of a shorter conversation is not a
prefix of the longer one's cannot mark spans this way: the row fails, named. Plain text: prompt +
completion, the loss on the completion's tokens, then the end-of-sequence token (its id appended,
as generation ends with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rltrain.data.datasets import DataError

__all__ = ["Example", "encode", "to_example"]


@dataclass
class Example:
    """One row: a conversation (messages) or a prompt and its completion (text or messages)."""

    label: str  # names the row in errors (file:line, dataset[i])
    prompt: Any = None
    completion: Any = None
    messages: list[dict] | None = None


def to_example(label: str, row: dict, prompt_key: str, completion_key: str, messages_key: str) -> Example:
    """A row of a file or dataset as an `Example` (the column names from config); DataError names the row."""
    if not isinstance(row, dict):
        raise DataError(f"{label}: a row must be an object, got {type(row).__name__}")
    if row.get(messages_key) is not None:
        msgs = row[messages_key]
        if not (isinstance(msgs, list) and msgs and all(isinstance(m, dict) and "role" in m and "content" in m
                                                      for m in msgs)):
            raise DataError(f"{label}: {messages_key!r} must be a list of {{role, content}} messages")
        if not any(m["role"] == "assistant" for m in msgs):
            raise DataError(f"{label}: {messages_key!r} has no assistant message to learn")
        return Example(label, messages=list(msgs))
    missing = [k for k in (prompt_key, completion_key) if row.get(k) is None]
    if missing:
        raise DataError(f"{label}: missing {', '.join(repr(k) for k in missing)} (or a {messages_key!r} column); "
                        f"columns: {', '.join(sorted(row))}")
    prompt, completion = row[prompt_key], row[completion_key]
    if isinstance(prompt, list) != isinstance(completion, list):
        raise DataError(f"{label}: {prompt_key!r} and {completion_key!r} must both be text or both be messages")
    return Example(label, prompt=prompt, completion=completion)


def _chat_spans(tokenizer: Any, messages: list[dict], learn: list[int], label: str) -> tuple[str, list[tuple[int, int]]]:
    """(the conversation's text, character spans of the messages at indices `learn`)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{label}: chat messages need a tokenizer with a chat template (this one has none)")
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(msgs, tokenize=False,  # noqa: E731
                                                                    add_generation_prompt=gen)
    text = render(messages)
    spans = []
    for i in learn:
        head, upto = render(messages[:i], True) if i else "", render(messages[: i + 1])
        if not (text.startswith(head) and text.startswith(upto) and upto.startswith(head)):
            raise DataError(f"{label}: the chat template renders message {i} differently inside the whole "
                            "conversation than on its own, so its tokens cannot be marked")
        spans.append((len(head), len(upto)))
    return text, spans


def encode(tokenizer: Any, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(token ids, loss mask 0/1 per token) of an example, truncated to `max_length` tokens."""
    if ex.messages is not None:
        learn = [i for i, m in enumerate(ex.messages) if m["role"] == "assistant"]
        text, spans = _chat_spans(tokenizer, ex.messages, learn, ex.label)
        eos = []
    elif isinstance(ex.prompt, list):
        msgs = list(ex.prompt) + list(ex.completion)
        text, spans = _chat_spans(tokenizer, msgs, list(range(len(ex.prompt), len(msgs))), ex.label)
        eos = []
    else:
        text = str(ex.prompt) + str(ex.completion)
        spans = [(len(str(ex.prompt)), len(text))]
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = [int(any(a <= start < b for a, b in spans)) for start, _ in enc["offset_mapping"]]
    ids, mask = ids + eos, mask + [1] * len(eos)
    return ids[:max_length], mask[:max_length]
