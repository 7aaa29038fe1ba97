"""Chat prompts for tool use with a chat model (`data.task: calc_chat`): the toy product task
(`calc`, rltrain/data/tasks.py) asked in words, with the code interpreter described in a system message
in the Hermes / Qwen tool-call format that rltrain/envs/code_interpreter.py parses."""

from __future__ import annotations

from rltrain.data.tasks import make_rows

__all__ = ["TOOL_SYSTEM", "make_calc_chat_rows"]

TOOL_SYSTEM = ("You can run Python code. To run code, write exactly\n"
               '<tool_call>{"name": "python", "arguments": {"code": "print(12*34)"}}</tool_call>\n'
               "and the output comes back in the next message. Put the final answer in \\boxed{}.")


def make_calc_chat_rows(split: str, n: int, seed: int = 0) -> list[dict]:
    """`n` rows of the calc task's `split` as chat prompts (system: the tool; user: the question)."""
    rows = make_rows("calc", split, n, seed=seed)
    for r in rows:
        r["prompt"] = [{"role": "system", "content": TOOL_SYSTEM},
                       {"role": "user", "content": f"What is {r['a']} * {r['b']}?"}]
    return rows
