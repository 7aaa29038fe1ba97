"""The prefix-stability check of chat episodes: do the ids the learner trains on equal a render of the
whole conversation by the tokenizer's chat template?

A multi-turn chat episode is built token in, token out: the prompt's ids, then each turn's ids as the
engine generated them, each tool observation's ids as the wrapper of rltrain/driver/flow/multiturn.py
renders it. A trainer that re-renders the conversation instead (as peers' agent loops do) gets other
ids wherever the template changes what the model wrote (strips whitespace, drops reasoning, re-tokenises
text into other pieces), and trains on tokens the policy never produced. rltrain never re-renders; this
check says where a re-render would differ (`multiturn/template_mismatch`: the share of episodes, and
with `env.template_check: stop` the run stops naming the episode and the first differing token).
"""

from __future__ import annotations

from typing import Any

from rltrain.envs.base import Turn

__all__ = ["conversation", "template_mismatch"]


def conversation(prompt: list[dict], history: list[Turn]) -> list[dict]:
    """The episode as chat messages: the prompt's, then the model's turns (assistant) and the
    observations (tool)."""
    msgs = list(prompt)
    for turn in history:
        msgs.append({"role": "assistant" if turn.role == "model" else "tool", "content": turn.text})
    return msgs


def template_mismatch(tokenizer: Any, prompt: list[dict], history: list[Turn], episode_ids: list[int]) -> int | None:
    """The first position where `episode_ids` (prompt + response ids as trained on) differ from the ids of
    the chat template's render of the whole conversation, or None when they agree (a render longer than
    the episode, e.g. its closing markers, is not a difference)."""
    text = tokenizer.apply_chat_template(conversation(prompt, history), tokenize=False)
    rendered = tokenizer(text, add_special_tokens=False)["input_ids"]
    for i, (a, b) in enumerate(zip(episode_ids, rendered)):
        if a != b:
            return i
    return None if len(rendered) >= len(episode_ids) else len(rendered)
