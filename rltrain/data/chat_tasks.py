"""The built-in chat tasks (prompts as chat messages, answers in `\\boxed{}`) for chat models, and which of
them have a `test_alt` split phrased unlike their training prompts. Plain tasks are in tasks.py."""

from __future__ import annotations

import importlib

__all__ = ["ALT_SPLIT_TASKS", "CHAT_TASKS", "chat_task_rows", "known_task"]

# task -> "module:function(split, n, seed) -> rows"
CHAT_TASKS = {"word_problems": "rltrain.data.word_problems:make_word_problem_rows",
              "arithmetic": "rltrain.data.word_problems:make_arithmetic_rows",
              "calc_chat": "rltrain.data.tool_tasks:make_calc_chat_rows"}
ALT_SPLIT_TASKS = ("word_problems", "arithmetic")


def chat_task_rows(task: str, split: str, n: int, seed: int) -> list[dict]:
    """`n` rows of a chat task's `split`, deterministic in `seed`."""
    module, fn = CHAT_TASKS[task].split(":")
    return getattr(importlib.import_module(module), fn)(split, n, seed)


def known_task(task: str) -> bool:
    from rltrain.data.tasks import TASKS

    return task == "default" or task in TASKS or task in CHAT_TASKS
