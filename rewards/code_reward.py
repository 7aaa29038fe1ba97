"""``code``: run the completion's Python code against test cases in the sandbox."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from ._asserts import Plan, judge, plan_snippet
from ._text import completion_text
from .sandbox import run_probes, run_python

__all__ = ["CodeReward", "extract_code"]

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str, require_fence: bool = False) -> str:
    """The last fenced code block (```python, ```py or bare ```), else the whole text unless
    ``require_fence`` (then "")."""
    blocks = _FENCE.findall(text or "")
    if blocks:
        return blocks[-1]
    return "" if require_fence else (text or "")


def _normalize_output(s: str) -> str:
    return "\n".join(line.rstrip() for line in (s or "").strip().splitlines())


def _io_cases(spec: Any) -> list[tuple[str, str]] | None:
    """stdin/stdout cases from {"inputs": [...], "outputs": [...]} or [{"input", "output"}, ...]."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return None
    if isinstance(spec, dict) and "inputs" in spec and "outputs" in spec:
        return [(str(i), str(o)) for i, o in zip(spec["inputs"], spec["outputs"])]
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(c, dict) and "input" in c and "output" in c for c in spec):
        return [(str(c["input"]), str(c["output"])) for c in spec]
    return None


class CodeReward:
    """Fraction of test cases the completion's code passes (or 1/0 for all-pass, ``mode="all"``).

    Test cases come from the ``tests_column`` column (default "tests"), in either form:

    - assertion snippets: a list of strings such as ``"assert add(2, 3) == 5"`` (or one string
      of test code). Snippets of a checkable form (``rewards/_asserts.py``: imports and asserts
      comparing what the program computes with constants) are judged here: the sandbox only
      evaluates ``add(2, 3)`` and returns the value as plain data, the comparison with 5 happens
      in this process, and the expected value never enters the sandbox. Other snippets run in the
      program's namespace as before, and the program could forge their outcome: ``stats``
      counts them (``untrusted_tests``) beside all test cases (``tests``);
    - stdin/stdout pairs: ``{"inputs": [...], "outputs": [...]}`` (APPS style, also as a JSON
      string) or ``[{"input": ..., "output": ...}, ...]``; one run per case, output compared
      with trailing whitespace ignored.

    Args:
        tests_column: column with the test cases.
        mode: "fraction" or "all".
        run_timeout_s: wall-clock limit of one sandboxed run.
        memory_mb: address-space limit of the sandboxed process.
        require_fence: only code inside ``` fences counts (else the whole completion is code).
        sample_budget_s: stop starting new runs for a sample after this long (later cases fail).
    Returns None for a sample without test cases, 0.0 for one without code.

    Comparisons follow Python's ``==`` on the plain values: ``1 == 1.0 == True``, ``[1] != (1,)``,
    NaN equals nothing; a value that is not plain data (an object with its own ``__eq__``, a
    subclass of ``int``) fails its test.
    """

    __name__ = "code"
    score_range = (0.0, 1.0)

    def __init__(
        self,
        tests_column: str = "tests",
        mode: str = "fraction",
        run_timeout_s: float = 5.0,
        memory_mb: int = 512,
        require_fence: bool = False,
        sample_budget_s: float = 30.0,
    ) -> None:
        if mode not in ("fraction", "all"):
            raise ValueError(f"mode must be 'fraction' or 'all', got {mode!r}")
        self.tests_column = tests_column
        self.mode = mode
        self.run_timeout_s = float(run_timeout_s)
        self.memory_mb = int(memory_mb)
        self.require_fence = require_fence
        self.sample_budget_s = float(sample_budget_s)
        self.stats = {"tests": 0, "untrusted_tests": 0}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _count(self, tests: int, untrusted: int) -> None:
        with self._lock:
            self.stats["tests"] += tests
            self.stats["untrusted_tests"] += untrusted

    def score(self, completion: Any, tests: Any) -> float | None:
        """Score one completion against its test cases."""
        if tests is None or (isinstance(tests, (list, tuple, str, dict)) and len(tests) == 0):
            return None
        code = extract_code(completion_text(completion), self.require_fence)
        if not code.strip():
            return 0.0
        cases = _io_cases(tests)
        if cases is not None:
            self._count(len(cases), 0)
            return self._score_io(code, cases)
        snippets = [tests] if isinstance(tests, str) else [str(t) for t in tests]
        plans = [plan_snippet(t) for t in snippets]
        untrusted = [t for t, plan in zip(snippets, plans) if plan is None]
        self._count(len(snippets), len(untrusted))
        n_pass = self._score_checked(code, [p for p in plans if p is not None])
        if untrusted and (self.mode == "fraction" or n_pass == len(snippets) - len(untrusted)):
            # a run of its own: these snippets' text (expected values included) never meets the probes
            res = run_python(code, tests=untrusted, timeout_s=self.run_timeout_s, memory_mb=self.memory_mb)
            n_pass += len(res.passed)
        if self.mode == "all":
            return float(n_pass == len(snippets))
        return n_pass / len(snippets)

    def _score_checked(self, code: str, plans: list[Plan]) -> int:
        """How many checkable snippets pass: probes evaluated in the sandbox, judged here."""
        if not plans:
            return 0
        snippets = [{"setup": list(p.setup), "probes": list(p.probes)} for p in plans]
        run = run_probes(code, snippets, timeout_s=self.run_timeout_s, memory_mb=self.memory_mb)
        if not run.loaded:
            return 0
        return sum(judge(plan, values) for plan, values in zip(plans, run.values))

    def _score_io(self, code: str, cases: list[tuple[str, str]]) -> float:
        start = time.monotonic()
        n_pass = 0
        for stdin, expected in cases:
            if time.monotonic() - start > self.sample_budget_s:
                break
            res = run_python(code, stdin=stdin, timeout_s=self.run_timeout_s, memory_mb=self.memory_mb)
            ok = res.returncode == 0 and not res.timed_out and _normalize_output(res.stdout) == _normalize_output(expected)
            n_pass += ok
            if not ok and self.mode == "all":
                return 0.0
        if self.mode == "all":
            return float(n_pass == len(cases))
        return n_pass / len(cases)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        tests = columns.get(self.tests_column) or [None] * len(completions)
        return [self.score(c, t) for c, t in zip(completions, tests)]
