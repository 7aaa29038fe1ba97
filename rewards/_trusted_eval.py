"""The trusted side's small expression language: what a test computes from the program's values.

An assert such as ``assert abs(f(2) - 4.0) < 1e-6`` becomes a tree of :class:`Node` whose leaves
are constants and *probes* (``f(2)``: evaluated in the sandbox, returned as plain data). The tree is
evaluated here, with Python's own semantics on plain values, by :func:`evaluate`. Only operations
whose cost the inputs' size bounds are allowed, and powers, repetitions and ranges are capped, so a
program's value cannot make the trusted side hang or fill memory. Any failure (a probe that raised
or returned something not plain, a TypeError, an overflow, a cap) is an exception: the check fails.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

__all__ = ["CALLS", "Node", "ProbeFailed", "evaluate"]

_MAX_ITEMS = 1_000_000  # elements a repetition or range may make
_MAX_POW_BITS = 100_000  # bits an integer power may have


class ProbeFailed(Exception):
    """A probe raised in the sandbox, returned a value that is not plain data, or never reported."""


@dataclasses.dataclass(frozen=True)
class Node:
    """``op`` "const" (``value``), "probe" (``value`` = its index) or an operation on ``args``.

    Operations: "and", "or", "not", "compare" (``value`` = the operator names, ``args`` = the
    operands), a binary or unary operator's name, "call" (``value`` = the function's name, ``args`` =
    positional nodes then keyword nodes, keywords named in ``kw``), "subscript", "slice",
    "list", "tuple", "set", "dict" (``args`` = keys and values alternating).
    """

    op: str
    args: tuple["Node", ...] = ()
    value: Any = None
    kw: tuple[str, ...] = ()

    def probes(self) -> int:
        """How many probe leaves this tree has."""
        return int(self.op == "probe") + sum(a.probes() for a in self.args)


def _checked_pow(base: Any, exp: Any) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0:
        if abs(exp) * max(1, abs(base).bit_length()) > _MAX_POW_BITS:
            raise OverflowError("power too large for the trusted side")
    return operator.pow(base, exp)


def _checked_mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) and len(seq) * n > _MAX_ITEMS:
            raise OverflowError("repetition too large for the trusted side")
    return operator.mul(a, b)


def _checked_mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise TypeError("string formatting is not evaluated on the trusted side")
    return operator.mod(a, b)


def _checked_range(*args: Any) -> range:
    r = range(*args)
    if len(r) > _MAX_ITEMS:
        raise OverflowError("range too large for the trusted side")
    return r


BINARY = {"+": operator.add, "-": operator.sub, "*": _checked_mul, "/": operator.truediv,
          "//": operator.floordiv, "%": _checked_mod, "**": _checked_pow}
UNARY = {"neg": operator.neg, "pos": operator.pos, "invert": operator.invert}
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
           "is": operator.is_, "is not": operator.is_not}
#: functions a test may apply to values on the trusted side, by the name a test calls them with
CALLS = {
    "abs": abs, "round": round, "len": len, "sorted": sorted, "reversed": lambda x: list(reversed(x)),
    "set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict, "sum": sum,
    "min": min, "max": max, "int": int, "float": float, "str": str, "bool": bool, "any": any, "all": all,
    "range": _checked_range, "divmod": divmod, "pow": _checked_pow,
    "math.isclose": math.isclose, "isclose": math.isclose, "math.sqrt": math.sqrt, "math.floor": math.floor,
    "math.ceil": math.ceil, "math.fabs": math.fabs, "math.log": math.log, "math.exp": math.exp,
}
#: names a test may use as constants
CONSTANTS = {"math.pi": math.pi, "math.e": math.e, "math.tau": math.tau, "math.inf": math.inf, "math.nan": math.nan}


def evaluate(node: Node, values: list[Any] | None) -> Any:
    """The value of ``node``; ``values[k]`` is probe k's value, or a ProbeFailed to raise."""
    op = node.op
    if op == "const":
        return node.value
    if op == "probe":
        if values is None:
            raise ProbeFailed("no probe values")
        got = values[node.value]
        if isinstance(got, ProbeFailed):
            raise got
        return got
    if op == "and":
        out: Any = True
        for a in node.args:
            out = evaluate(a, values)
            if not out:
                return out
        return out
    if op == "or":
        out = False
        for a in node.args:
            out = evaluate(a, values)
            if out:
                return out
        return out
    if op == "not":
        return not evaluate(node.args[0], values)
    if op == "compare":  # a < b < c: each operand once, left to right, stopping at the first False
        left = evaluate(node.args[0], values)
        for name, right_node in zip(node.value, node.args[1:]):
            right = evaluate(right_node, values)
            if not COMPARE[name](left, right):
                return False
            left = right
        return True
    if op in BINARY:
        return BINARY[op](evaluate(node.args[0], values), evaluate(node.args[1], values))
    if op in UNARY:
        return UNARY[op](evaluate(node.args[0], values))
    args = [evaluate(a, values) for a in node.args]
    if op == "call":
        n_pos = len(args) - len(node.kw)
        return CALLS[node.value](*args[:n_pos], **dict(zip(node.kw, args[n_pos:])))
    if op == "subscript":
        return args[0][args[1]]
    if op == "slice":
        return slice(*args)
    if op == "list":
        return args
    if op == "tuple":
        return tuple(args)
    if op == "set":
        return set(args)
    if op == "dict":
        return dict(zip(args[0::2], args[1::2]))
    raise ValueError(f"unknown operation {op!r}")
