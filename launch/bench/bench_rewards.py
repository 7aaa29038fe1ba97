"""Benchmark the rewards package: math verification samples/s and code-sandbox runs/s.

    python launch/bench/bench_rewards.py                 # 1,000 mixed math completions, 60 code runs
    python launch/bench/bench_rewards.py --n 1000 --workers 2 --code-n 60 --huge 2
    python launch/bench/bench_rewards.py --code-only --code-n 200 --repeat 3   # the code reward alone

Math: 1,000 completions mixing equivalent answer forms (fractions, decimals, \\frac vs /, boxed and
unboxed, thousands separators, symbolic expressions), wrong answers, long reasoning, empty or
malformed output, unicode, and ``--huge`` pathological expressions (towers of powers). Scored by
``rewards.load("math")`` (process isolation, ``--workers`` workers) after the workers have
started, and once inline (no isolation, this process) for comparison. Code: ``--code-n``
programs, each one sandboxed run against 3 assertions, through ``rewards.load("code")``; the
assertions are of the checkable form (the sandbox returns ``add(1, 2)``'s value, the reward
compares), and ``code_ms_per_sample`` is the wall time per program with ``--workers`` threads,
``code_cpu_ms_per_sample`` the CPU time (this process and its sandboxes), which other jobs on the
machine disturb less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))  # the repo root

import rewards  # noqa: E402


def math_samples(n: int, huge: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(completions, answers, kinds) — a deterministic mix."""
    rng = random.Random(seed)
    comps, golds, kinds = [], [], []
    filler = "Let us reason step by step. " * 40
    for i in range(n - huge):
        a, b = rng.randint(1, 99), rng.randint(2, 99)
        k = rng.random()
        if k < 0.15:
            gold, comp, kind = f"{a}/{b}", f"{filler}so the answer is $\\boxed{{\\frac{{{a}}}{{{b}}}}}$.", "frac"
        elif k < 0.25:
            gold, comp, kind = f"{a / 4:g}", f"The answer is \\boxed{{\\frac{{{a}}}{{4}}}}", "decimal"
        elif k < 0.35:
            v = a * 1000 + b
            gold, comp, kind = str(v), f"Total: \\boxed{{{v:,}}}", "thousands"
        elif k < 0.45:
            gold, comp, kind = f"x^2+{2 * a}x+{a * a}", f"Expanding gives \\boxed{{(x+{a})^2}}", "symbolic"
        elif k < 0.55:
            gold, comp, kind = str(a + b), f"{a} + {b} = {a + b}\n#### {a + b}", "gsm8k"
        elif k < 0.60:
            gold, comp, kind = str(a), f"The final answer is {a}", "unboxed"
        elif k < 0.85:
            gold, comp, kind = str(a + b), f"{filler}\\boxed{{{a + b + 1}}}", "wrong"
        elif k < 0.90:
            gold, comp, kind = str(a), rng.choice(["", "   ", "\\boxed{", "}}{{\\frac{", "$$$$", "\x00\x01"]), "malformed"
        elif k < 0.95:
            gold, comp, kind = "\\pi", f"答案是 \\boxed{{π}} ✓ {'é' * 10}", "unicode"
        else:
            gold, comp, kind = f"\\sqrt{{{a * a * 2}}}", f"\\boxed{{{a}\\sqrt{{2}}}}", "sqrt"
        comps.append(comp)
        golds.append(gold)
        kinds.append(kind)
    for _ in range(huge):
        comps.append("\\boxed{9^{9^{9^{9}}}}")
        golds.append("5")
        kinds.append("huge")
    order = list(range(n))
    rng.shuffle(order)
    return [comps[i] for i in order], [golds[i] for i in order], [kinds[i] for i in order]


CODE_OK = "```python\ndef add(a, b):\n    return a + b\n```"
CODE_BAD = "```python\ndef add(a, b):\n    return a - b\n```"
CODE_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]


def bench_math(n: int, workers: int, huge: int) -> dict:
    comps, golds, kinds = math_samples(n, huge)
    prompts = ["q"] * n
    reward = rewards.load("math", workers=workers)
    t0 = time.monotonic()
    reward(["q"] * workers, ["\\boxed{1}"] * workers, answer=["1"] * workers)  # start the workers
    startup = time.monotonic() - t0
    t0 = time.monotonic()
    out = reward(prompts, comps, answer=golds)
    took = time.monotonic() - t0
    stats = dict(reward.stats)
    reward.close()
    inline = rewards.load("math", isolation="inline")
    inline(["q"], ["\\boxed{1}"], answer=["1"])  # import math-verify before timing
    t0 = time.monotonic()
    out_inline = inline(prompts, comps, answer=golds)
    took_inline = time.monotonic() - t0
    correct = {}
    for k, r in zip(kinds, out):
        correct.setdefault(k, [0, 0])
        correct[k][0] += r == 1.0
        correct[k][1] += 1
    return {
        "math_samples": n, "math_workers": workers, "math_huge": huge,
        "math_worker_startup_s": round(startup, 2),
        "math_process_s": round(took, 2), "math_process_samples_per_s": round(n / took, 1),
        "math_inline_s": round(took_inline, 2), "math_inline_samples_per_s": round(n / took_inline, 1),
        "math_same_scores_inline_vs_process": out == out_inline,
        "math_timeouts": stats["timeouts"], "math_errors": stats["errors"],
        "math_scored_1_by_kind": {k: f"{c}/{t}" for k, (c, t) in sorted(correct.items())},
    }


def cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (the sandboxed runs)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_code(n: int, workers: int, repeat: int = 1) -> dict:
    comps = [CODE_OK if i % 2 == 0 else CODE_BAD for i in range(n)]
    reward = rewards.load("code", workers=workers)
    reward(["q"], [CODE_OK], tests=[CODE_TESTS])  # probe the sandbox layers once
    times, cpus, ok = [], [], True
    for _ in range(repeat):
        t0, c0 = time.monotonic(), cpu_s()
        out = reward(["q"] * n, comps, tests=[CODE_TESTS] * n)
        times.append(time.monotonic() - t0)
        cpus.append(cpu_s() - c0)
        ok = ok and out == [1.0 if i % 2 == 0 else 0.0 for i in range(n)]
    from rewards.sandbox import sandbox_layers

    took = statistics.median(times)
    return {
        "code_runs": n, "code_workers": workers, "code_repeats": repeat, "code_s": round(took, 2),
        "code_s_each_repeat": [round(t, 2) for t in times],
        "code_runs_per_s": round(n / took, 1), "code_ms_per_sample": round(1000 * took / n, 1),
        "code_cpu_ms_per_sample": round(1000 * statistics.median(cpus) / n, 1),
        "code_scores_ok": ok,
        "sandbox_layers": " ".join(sandbox_layers()) or "(none: audit hook and rlimits only)",
    }


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo (and lscpu) give it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="math completions")
    p.add_argument("--workers", type=int, default=2, help="worker processes / threads")
    p.add_argument("--huge", type=int, default=2, help="pathological expressions among the math completions")
    p.add_argument("--code-n", type=int, default=60, help="sandboxed code runs")
    p.add_argument("--code-only", action="store_true", help="skip the math benchmark")
    p.add_argument("--repeat", type=int, default=1, help="time the code batch this many times (median reported)")
    args = p.parse_args()
    res = {"machine": f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}",
           "python": platform.python_version()}
    if not args.code_only:
        res.update(bench_math(args.n, args.workers, args.huge))
    res.update(bench_code(args.code_n, args.workers, args.repeat))
    for k, v in res.items():
        print(f"{k}: {v}")
    print("JSON " + json.dumps(res))


if __name__ == "__main__":
    main()
