"""A code-interpreter environment: the model writes Python, the rewards sandbox runs it, the output comes
back as the observation (`env.name: code`).

A model turn is a call, an answer, or neither:

- a call: `py <code>` on one line (the toy's form, e.g. `py 47*83`), or the chat template's tool call
  `<tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>` (Hermes / Qwen);
- an answer: `a <value>` (toy) or `\\boxed{<value>}` (chat); the episode ends and is scored 1 when the
  value equals the row's answer, else 0;
- anything else gets the observation `err\\n`.

The code runs in the `rewards` sandbox (its own process, network namespace, time, memory and output
limits; rewards/sandbox.py) like a notebook cell: statements run in order and a last bare expression's
value is printed unless it is None. The observation is `=<stdout>\\n` (toy) or the output itself (chat), cut to
`max_output_chars`; a failure is `!<ErrorName>\\n` and a timeout `!Timeout\\n`, each counted in
`tool_errors`. The runtime appends the observation as token ids and masks it out of the loss.
"""

from __future__ import annotations

import ast
import json
import re

from rltrain.data import PromptRow
from rltrain.envs.base import StepResult, Turn

__all__ = ["CodeInterpreterEnv", "cell_program", "parse_code_turn"]

_CALL = re.compile(r"^\s*py\s+(.+?)\s*$", re.S)
_ANSWER = re.compile(r"^\s*a\s+(\S+)\s*$")
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def parse_code_turn(text: str) -> tuple[str, str] | None:
    """("code", source) or ("answer", value) from a model turn's text; None when it is neither."""
    if (m := _TOOL_CALL.search(text)) is not None:
        try:
            call = json.loads(m.group(1))
            return ("code", str(call["arguments"]["code"])) if call.get("name") == "python" else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    if (m := _BOXED.search(text)) is not None:
        return "answer", m.group(1).strip()
    if (m := _ANSWER.match(text)) is not None:
        return "answer", m.group(1)
    if (m := _CALL.match(text)) is not None:
        return "code", m.group(1)
    return None


def cell_program(code: str) -> str | None:
    """The program a notebook cell of `code` runs: its statements, the last bare expression printed.
    None when the code does not parse."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if tree.body and isinstance(tree.body[-1], ast.Expr):  # shown unless None (as a notebook does)
        value = ast.parse("__cell_value = 0").body[0]
        value.value = tree.body[-1].value
        show = ast.parse("if __cell_value is not None:\n    print(__cell_value)").body[0]
        tree.body[-1:] = [value, show]
        ast.fix_missing_locations(tree)
    return ast.unparse(tree)


class CodeInterpreterEnv:
    """One episode with a Python interpreter. Options: `timeout_s` and `memory_mb` of a run,
    `max_output_chars` of an observation, `answer_style` ("plain": `a 3901`, the toy; "boxed": chat)."""

    def __init__(self, timeout_s: float = 3.0, memory_mb: int = 256, max_output_chars: int = 200,
                 answer_style: str = "plain") -> None:
        if answer_style not in ("plain", "boxed"):
            raise ValueError(f"env.options.answer_style={answer_style!r}; allowed: plain, boxed")
        self.timeout_s, self.memory_mb, self.max_output_chars = timeout_s, memory_mb, max_output_chars
        self.answer_style = answer_style
        self.answer: str | None = None
        self.tool_calls = self.tool_errors = 0

    def reset(self, row: PromptRow) -> str | None:
        self.answer = row.answer
        return None

    def run(self, code: str) -> str:
        """The observation text of running `code` (the sandbox never raises for what the code does)."""
        from rewards.sandbox import run_python

        self.tool_calls += 1
        program = cell_program(code)
        if program is None:
            self.tool_errors += 1
            return "!SyntaxError"
        res = run_python(program, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                         max_output_bytes=4 * self.max_output_chars)
        if res.timed_out:
            self.tool_errors += 1
            return "!Timeout"
        if res.returncode != 0:
            self.tool_errors += 1
            last = (res.stderr or "").strip().splitlines()[-1:] or ["Error"]
            return "!" + last[0].split(":")[0].strip()[: self.max_output_chars]
        return res.stdout.strip()[: self.max_output_chars]

    def step(self, history: list[Turn]) -> StepResult:
        action = parse_code_turn(history[-1].text)
        if action is None:
            return StepResult("err\n")
        kind, arg = action
        if kind == "answer":
            return StepResult(None, done=True)
        out = self.run(arg)
        if self.answer_style == "boxed":
            return StepResult(out)
        return StepResult((out if out.startswith("!") else "=" + out) + "\n")

    def score(self, history: list[Turn]) -> float:
        model_turns = [t for t in history if t.role == "model"]
        action = parse_code_turn(model_turns[-1].text) if model_turns else None
        return float(action is not None and action[0] == "answer" and action[1] == self.answer)

    def answer_for_teacher_forcing(self, row: PromptRow) -> tuple[str, str]:
        return ("a " if self.answer_style == "plain" else "\\boxed{"), str(row.answer)
