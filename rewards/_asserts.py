"""Assert-style tests split so that the verdict is reached on the trusted side (issue #34).

``assert add(2, 3) == 5`` is planned, here and never in the sandbox, into a *probe* ``add(2, 3)``
(the only part the sandbox sees: it evaluates it in the program's namespace and returns the value
as plain data, ``rewards/_plain.py``) and a *check* ``<probe 0> == 5`` evaluated here on that value
(``rewards/_trusted_eval.py``). The expected side never enters the sandbox, so a program cannot
read it, and no object of the program's takes part in the comparison.

A snippet is *checkable* when it is import statements plus asserts, and each assert is built from:

- constants: literals, displays, arithmetic, ``math.pi``..., and calls of the functions in
  ``_trusted_eval.CALLS`` on constants (``sorted([3, 1])``, ``float('inf')``, ``set(range(4))``);
- probes: a name, an attribute, or a call whose arguments are constants, rooted at a name
  (``add(2, 3)``, ``Solution().two_sum([2, 7], 9)``, ``CONST``, ``f("x").upper()``);
- trusted operations on those: comparisons (``==``, ``!=``, ``<``..., ``in``, ``is None``/``True``/
  ``False``), ``and``/``or``/``not``, arithmetic, subscripts, displays, ``CALLS`` functions
  (``abs(f(x) - 2.5) < 1e-6``, ``math.isclose(f(x), 2.5)``, ``sorted(f(x)) == [1, 2]``).

A HumanEval-style wrapper, ``def check(candidate):`` holding only imports and asserts followed by
``check(name)``, is read as its asserts with ``candidate`` replaced by ``name``; a top-level
``METADATA = ...`` assignment is ignored.

Each comparison (each operand of ``and``/``or``/``not``) may hold one probe: it pits one value the
program produced against values computed here. ``assert f(1) == f(2)``, an assignment, a loop, a
helper function or a call with a computed argument makes the snippet *untrusted*: it runs as it
always did, by ``exec`` in the program's namespace, and is counted so that a user sees how much of
the reward rests on the program's word.
"""

from __future__ import annotations

import ast
import dataclasses
import functools

from ._trusted_eval import BINARY, CALLS, COMPARE, CONSTANTS, UNARY, Node, ProbeFailed, evaluate

__all__ = ["Plan", "judge", "plan_snippet"]

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
_UNARYOPS = {ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_DISPLAYS = {ast.List: "list", ast.Tuple: "tuple", ast.Set: "set"}
assert set(_BINOPS.values()) <= set(BINARY) and set(_UNARYOPS.values()) <= set(UNARY)
assert set(_CMPOPS.values()) <= set(COMPARE)


class Untrusted(Exception):
    """The snippet is not of a form the harness can check on its side."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checkable snippet: imports and probes for the sandbox, checks for the trusted side."""

    setup: tuple[str, ...]  # import statements, run in the program's namespace before the probes
    probes: tuple[str, ...]  # expressions the sandbox evaluates and returns as plain data
    checks: tuple[Node, ...]  # one per assert; all must be true


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


class _Builder:
    """Turns one assert's expression into a Node tree, collecting the probes (shared by a snippet)."""

    def __init__(self, probes: list[str]) -> None:
        self.probes = probes

    def constant(self, node: ast.expr) -> Node | None:
        """The node folded to a constant, or None if it is not one (Untrusted if it raises here)."""
        try:
            tree = self.build(node, allow_probes=False)
        except Untrusted:
            return None
        try:
            return Node("const", value=evaluate(tree, None))
        except Exception as exc:  # noqa: BLE001 - e.g. 1/0: Python would raise it too; keep its exact behaviour
            raise Untrusted(f"constant raises {type(exc).__name__}") from None

    def build(self, node: ast.expr, allow_probes: bool = True) -> Node:
        if allow_probes:
            const = self.constant(node)
            if const is not None:
                return const
        if isinstance(node, ast.Constant) and not isinstance(node.value, type(...)):
            return Node("const", value=node.value)
        if isinstance(node, ast.BoolOp):
            return Node("and" if isinstance(node.op, ast.And) else "or", tuple(self.build(v, allow_probes) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Node("not", (self.build(node.operand, allow_probes),))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
            return Node(_UNARYOPS[type(node.op)], (self.build(node.operand, allow_probes),))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return Node(_BINOPS[type(node.op)], (self.build(node.left, allow_probes), self.build(node.right, allow_probes)))
        if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
            return self.compare(node, allow_probes)
        if isinstance(node, tuple(_DISPLAYS)) and not any(isinstance(e, ast.Starred) for e in node.elts):
            return Node(_DISPLAYS[type(node)], tuple(self.build(e, allow_probes) for e in node.elts))
        if isinstance(node, ast.Dict) and None not in node.keys:
            items = [self.build(x, allow_probes) for kv in zip(node.keys, node.values) for x in kv]
            return Node("dict", tuple(items))
        if isinstance(node, ast.Subscript):
            return Node("subscript", (self.build(node.value, allow_probes), self.build(node.slice, allow_probes)))
        if isinstance(node, ast.Slice):
            parts = [node.lower, node.upper, node.step]
            return Node("slice", tuple(Node("const") if p is None else self.build(p, allow_probes) for p in parts))
        name = _dotted(node)
        if name in CONSTANTS:
            return Node("const", value=CONSTANTS[name])
        if isinstance(node, ast.Call) and _dotted(node.func) in CALLS:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise Untrusted("starred arguments")
            args = [self.build(a, allow_probes) for a in node.args]
            kws = [self.build(k.value, allow_probes) for k in node.keywords]
            return Node("call", tuple(args + kws), value=_dotted(node.func), kw=tuple(k.arg for k in node.keywords))
        if allow_probes and self.is_probe(node):
            self.probes.append(ast.unparse(node))
            return Node("probe", value=len(self.probes) - 1)
        raise Untrusted(f"{type(node).__name__} is not checked on the trusted side")

    def compare(self, node: ast.Compare, allow_probes: bool) -> Node:
        ops = tuple(_CMPOPS[type(o)] for o in node.ops)
        operands = [node.left] + list(node.comparators)
        for name, right in zip(ops, operands[1:]):  # identity only with the singletons
            if name in ("is", "is not") and not (isinstance(right, ast.Constant) and right.value in (None, True, False)
                                                 and type(right.value) in (type(None), bool)):
                raise Untrusted("'is' with something other than None, True or False")
        return Node("compare", tuple(self.build(o, allow_probes) for o in operands), value=ops)

    def is_probe(self, node: ast.expr) -> bool:
        """A name, attribute or call rooted at a name, every argument a constant."""
        if isinstance(node, ast.Name):
            return True
        if isinstance(node, ast.Attribute):
            return self.is_probe(node.value)
        if isinstance(node, ast.Call):
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                return False
            return self.is_probe(node.func) and all(self.constant(a) is not None for a in node.args + [k.value for k in node.keywords])
        return False


def _one_probe_per_comparison(node: Node) -> None:
    """Each part under and/or/not compares at most one value of the program's with trusted values."""
    if node.op in ("and", "or", "not"):
        for a in node.args:
            _one_probe_per_comparison(a)
    elif node.probes() > 1:
        raise Untrusted("a comparison between two values of the program's")


class _Rename(ast.NodeTransformer):
    """Replaces a wrapper's parameter with the name it was called with."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.new, node.ctx), node) if node.id == self.old else node


def _flatten(body: list[ast.stmt]) -> list[ast.stmt]:
    """The snippet's statements with ``def check(candidate): ...`` + ``check(name)`` inlined."""
    wrappers: dict[str, ast.FunctionDef] = {}
    used: set[str] = set()
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef) and len(stmt.args.args) == 1 and not stmt.decorator_list and not (
                stmt.args.vararg or stmt.args.kwarg or stmt.args.kwonlyargs or stmt.args.posonlyargs or stmt.args.defaults):
            wrappers[stmt.name] = stmt
        elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
              and stmt.value.func.id in wrappers and len(stmt.value.args) == 1 and not stmt.value.keywords
              and isinstance(stmt.value.args[0], ast.Name)):
            fn = wrappers[stmt.value.func.id]
            rename = _Rename(fn.args.args[0].arg, stmt.value.args[0].id)
            out += [rename.visit(s) for s in fn.body]
            used.add(fn.name)
        elif isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] == ["METADATA"]:
            continue
        else:
            out.append(stmt)
    return out + [fn for name, fn in wrappers.items() if name not in used]  # a helper: not checkable


@functools.lru_cache(maxsize=4096)
def plan_snippet(source: str) -> Plan | None:
    """The snippet's plan, or None when it is not of a checkable form (see the module docstring)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    setup: list[str] = []
    probes: list[str] = []
    checks: list[Node] = []
    builder = _Builder(probes)
    try:
        for stmt in _flatten(tree.body):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)) and getattr(stmt, "level", 0) == 0:
                setup.append(ast.unparse(stmt))
            elif isinstance(stmt, ast.Assert):  # the message is not evaluated: it may spell the expected value
                check = builder.build(stmt.test)
                _one_probe_per_comparison(check)
                checks.append(check)
            elif isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                continue
            else:
                raise Untrusted(f"{type(stmt).__name__} statement")
    except (Untrusted, RecursionError):
        return None
    if not checks:
        return None
    return Plan(tuple(setup), tuple(probes), tuple(checks))


def judge(plan: Plan, values: list) -> bool:
    """Whether every check of the plan holds, given each probe's value (or a ProbeFailed)."""
    for check in plan.checks:
        try:
            if not evaluate(check, values):
                return False
        except (ProbeFailed, ArithmeticError, TypeError, ValueError, LookupError, RecursionError, MemoryError):
            return False
    return True
