"""Text helpers shared by rewards: completions in either TRL form, and answer extraction."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["completion_text", "prompt_text", "last_boxed", "extract_answer"]


def _content(message: Any) -> str:
    """The text of one chat message (content may be a string or a list of typed parts)."""
    if isinstance(message, dict):
        content = message.get("content", "")
    else:
        content = message
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(content)


def completion_text(completion: Any) -> str:
    """Plain text of a completion: a string, or TRL's conversational form (a list of message dicts).

    For a conversational completion the assistant messages are joined (all messages when none has
    a role). Anything else (None, numbers, malformed objects) becomes a string, never an exception.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content(completion)
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
        if not msgs:
            msgs = list(completion)
        return "\n".join(_content(m) for m in msgs)
    return str(completion)


def prompt_text(prompt: Any) -> str:
    """Plain text of a prompt (string or list of messages: all message contents joined)."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        return "\n".join(_content(m) for m in prompt)
    return _content(prompt)


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``) with balanced braces, else None."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is\s*:?|:)\s*([^\n]+)", re.IGNORECASE)


def extract_answer(text: str, how: str = "auto") -> str:
    """The final answer in a completion.

    ``how``: "boxed" (last \\boxed{}), "answer_tag" (last <answer>...</answer>), "hashes"
    (GSM8K ``#### x``), "answer_is" ("the answer is x" / "Answer: x"), "last_line", "none"
    (whole text), or "auto" (the first of boxed, answer_tag, hashes, answer_is that matches,
    else the last non-empty line). Returns "" when nothing matches.
    """
    text = text or ""
    if how == "none":
        return text.strip()
    order = ["boxed", "answer_tag", "hashes", "answer_is", "last_line"] if how == "auto" else [how]
    for kind in order:
        if kind == "boxed":
            got = last_boxed(text)
        elif kind == "answer_tag":
            found = _ANSWER_TAG.findall(text)
            got = found[-1] if found else None
        elif kind == "hashes":
            found = _HASHES.findall(text)
            got = found[-1] if found else None
        elif kind == "answer_is":
            found = _ANSWER_IS.findall(text)
            got = found[-1] if found else None
        elif kind == "last_line":
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            got = lines[-1] if lines else None
        else:
            raise ValueError(f"unknown extraction {how!r}; allowed: auto, boxed, answer_tag, hashes, answer_is, last_line, none")
        if got is not None:
            return got.strip()
    return ""
