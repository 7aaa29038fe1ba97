"""The built-in toy search environment: look a fact up, then answer (multi-turn, CPU-sized).

Task rows (`data.task: search`, rltrain/data/tasks.py) ask for the value of a 2-letter entity:
`"ka?"`. The value is in a knowledge base generated from a seed (`search_fact(world, entity)`), so
no model knows it before searching. One episode, with the toy tokenizer (one token per character):

    ka?                      prompt
    s ka\\n                   model turn: a search call (a turn ends at "\\n" or EOS)
    ka=37\\n                  observation: the fact (tokens masked out of the loss)
    a 37<eos>                model turn: the answer; the episode ends, scored 1 if right else 0

A turn that is neither a call nor an answer gets the observation `err\\n`; the episode ends at an
answer or at `env.max_turns` (scored 0). A chat model may instead call
`<tool_call>{"name": "search", "arguments": {"query": "ka"}}</tool_call>` and answer `\\boxed{37}`.
"""

from __future__ import annotations

import json
import re

from rltrain.data import PromptRow
from rltrain.data.tasks import SEARCH_ENTITIES, chain_fact, search_fact
from rltrain.envs.base import StepResult, Turn

_CALL = re.compile(r"^\s*s\s+([a-z]{1,4})\s*$")
_ANSWER = re.compile(r"^\s*a\s+(\S+)\s*$")
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def parse_turn(text: str) -> tuple[str, str] | None:
    """("search", query) or ("answer", value) from a model turn's text; None when it is neither."""
    if (m := _CALL.match(text)) is not None:
        return "search", m.group(1)
    if (m := _ANSWER.match(text)) is not None:
        return "answer", m.group(1)
    if (m := _TOOL_CALL.search(text)) is not None:
        try:
            call = json.loads(m.group(1))
            return "search", str(call["arguments"]["query"]).strip()
        except (ValueError, KeyError, TypeError):
            return None
    if (m := _BOXED.search(text)) is not None:
        return "answer", m.group(1).strip()
    return None


class SearchEnv:
    """One episode of the search task. `world` defaults to the row's (`columns["world"]`); `answer_style`
    is the answer form IGPO teacher-forces: "plain" (`a 37`) or "boxed" (`\\boxed{37}`, chat models)."""

    def __init__(self, world: int | None = None, answer_style: str = "plain") -> None:
        if answer_style not in ("plain", "boxed"):
            raise ValueError(f"env.options.answer_style={answer_style!r}; allowed: plain, boxed")
        self.answer_style = answer_style
        self.world_option = world
        self.answer: str | None = None
        self.world = 0
        self.tool_calls = 0

    def reset(self, row: PromptRow) -> str | None:
        self.world = self.world_option if self.world_option is not None else int(row.columns.get("world", 0))
        self.answer = row.answer
        return None

    def step(self, history: list[Turn]) -> StepResult:
        action = parse_turn(history[-1].text)
        if action is None:
            return StepResult("err\n")
        kind, arg = action
        if kind == "answer":
            return StepResult(None, done=True)
        self.tool_calls += 1
        value = self.lookup(arg) if arg in SEARCH_ENTITIES else "none"
        return StepResult(f"{arg}={value}\n")

    def lookup(self, entity: str) -> str:
        """The fact a search for `entity` returns."""
        return search_fact(self.world, entity)

    def score(self, history: list[Turn]) -> float:
        model_turns = [t for t in history if t.role == "model"]
        action = parse_turn(model_turns[-1].text) if model_turns else None
        return float(action is not None and action[0] == "answer" and action[1] == self.answer)

    def answer_for_teacher_forcing(self, row: PromptRow) -> tuple[str, str]:
        return ("a " if self.answer_style == "plain" else "\\boxed{"), str(row.answer)


class ChainSearchEnv(SearchEnv):
    """Multi-hop search (`data.task: search_chain`): a fact may name another entity (`ka=mb`), and the asked
    value is at the end of a chain of `CHAIN_HOPS` facts, so an episode needs three calls before its answer:

        ka?  |  s ka\n  ka=mb\n  |  s mb\n  mb=qz\n  |  s qz\n  qz=37\n  |  a 37<eos>

    The outcome is 1 for the final value only; nothing rewards a hop on its own (IGPO's information gain is
    the only per-turn signal)."""

    def lookup(self, entity: str) -> str:
        return chain_fact(self.world, entity)
