"""The code's shape, checked: import boundaries between rooms, the one place that gathers actor calls,
file and function sizes, and a bad engine name failing in seconds."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


def test_algorithms_imports_torch_only():
    loaded = _loaded_after_import("algorithms")
    assert "torch" in loaded
    assert not loaded & {"ray", "vllm", "deepspeed", "rltrain", "transformers", "rewards", "wandb"}


def test_rewards_imports_no_heavy_library_at_import():
    loaded = _loaded_after_import("rewards")
    assert not loaded & {"torch", "ray", "vllm", "deepspeed", "rltrain", "algorithms", "transformers"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# room -> module prefixes it must not import (see each room's __init__ docstring)
FORBIDDEN = {
    "workers": ("rltrain.driver",),
    "engines": ("rltrain.driver", "rltrain.workers", "ray"),
    "data": ("rltrain.driver", "rltrain.workers", "rltrain.engines", "ray"),
    "toy": ("rltrain.driver", "rltrain.workers", "ray"),
    "config": ("rltrain.workers", "ray", "rltrain.driver"),
    "envs": ("rltrain.driver", "rltrain.workers", "rltrain.engines", "ray"),
}
# driver/'s rooms sit under its loop: none imports the loop's modules or another room
_LOOP = tuple(f"rltrain.driver.{m}" for m in ("trainer", "update", "critic", "run_setup", "sweep"))
FORBIDDEN.update({
    "driver/flow": _LOOP + ("rltrain.driver.recovery", "rltrain.driver.reporting"),
    "driver/recovery": _LOOP + ("rltrain.driver.flow", "rltrain.driver.reporting"),
    "driver/reporting": _LOOP + ("rltrain.driver.flow", "rltrain.driver.recovery"),
})


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_respect_their_import_boundaries(room):
    bad = []
    for path in sorted((ROOT / "rltrain" / room).rglob("*.py")):
        for name in _imports(path):
            if any(name == p or name.startswith(p + ".") for p in FORBIDDEN[room]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def _module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (any depth, relative imports resolved)."""
    files = {}
    for pkg in ("rltrain", "algorithms", "rewards"):
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            files[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            out |= {t for t in targets if t in files and t != name}
        graph[name] = out
    return graph


def test_no_import_circles():
    """No module reaches itself through the modules it imports (function-level imports count)."""
    graph = _module_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_only_the_actor_group_helper_gathers():
    """`ray.get` appears only in workers/group.py (and placement's wait for its placement group)."""
    uses = []
    for path in sorted((ROOT / "rltrain").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "wait") \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "ray":
                uses.append((path.relative_to(ROOT).as_posix(), ast.unparse(node.args[0])))
    outside = [u for u in uses if u[0] != "rltrain/workers/group.py"]
    assert outside == [("rltrain/workers/placement.py", "pg.ready()")], outside


def test_file_and_loop_function_sizes():
    long_files = [f"{p.relative_to(ROOT)} ({n})" for room in ("rltrain", "algorithms", "rewards")
                  for p in (ROOT / room).rglob("*.py") if (n := len(p.read_text().splitlines())) > 400]
    assert not long_files, long_files
    tree = ast.parse((ROOT / "rltrain" / "driver" / "trainer.py").read_text())
    long_fns = [f"{n.name} ({n.end_lineno - n.lineno + 1})" for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long_fns, long_fns


def test_the_loop_never_branches_on_a_name():
    src = (ROOT / "rltrain" / "driver" / "trainer.py").read_text()
    for needle in ('== "sync"', '== "one_step_off"', '== "vllm"', '== "transformers"', "preset ==", "preset in"):
        assert needle not in src, needle


def test_unknown_engine_fails_in_seconds_listing_the_allowed_ones():
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), "rollout.engine=no_such_engine"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert "rollout.engine" in proc.stderr and "transformers" in proc.stderr and "vllm" in proc.stderr
    assert elapsed < 30, f"took {elapsed:.1f}s"


def test_the_three_import_path_resolvers_share_one_rule():
    """A stage (algorithms/), a schedule, engine or environment (rltrain/registry.py) and a reward (rewards/)
    are each named by `pkg.mod:attr`, where a dotted attr reaches a nested object; a missing attribute
    is an error naming the path. (Three resolvers, one per package: rewards/ and algorithms/ are standalone
    and rltrain/registry.py imports only the standard library.)"""
    import sys
    import types

    import pytest

    import rewards
    from algorithms.registry import ConfigError, resolve
    from algorithms.stages.base import Objective as BaseObjective
    from rltrain.registry import load_class

    mod = types.ModuleType("my_nested_parts")

    class Outer:
        class Objective(BaseObjective):
            pass

        class Schedule:
            pass

        @staticmethod
        def reward(prompts, completions, **columns):
            return [1.0 for _ in completions]

    mod.Outer = Outer
    sys.modules["my_nested_parts"] = mod
    try:
        assert resolve("objective", "my_nested_parts:Outer.Objective", "k") is Outer.Objective
        assert load_class("my_nested_parts:Outer.Schedule", {}, "k") is Outer.Schedule
        assert rewards.load("my_nested_parts:Outer.reward")(["p"], ["c"]) == [1.0]
        with pytest.raises(ConfigError, match="cannot import 'my_nested_parts:Outer.Missing'"):
            resolve("objective", "my_nested_parts:Outer.Missing", "k")
        with pytest.raises(ValueError, match="cannot import 'my_nested_parts:Outer.Missing'"):
            load_class("my_nested_parts:Outer.Missing", {}, "k")
    finally:
        del sys.modules["my_nested_parts"]
