"""Benchmark (not a test): run the embedded default end to end and record test pass@1 before/after
and the wall time.

    .venv/bin/python launch/bench_default.py [extra overrides...]   # writes docs/bench_default.json

The whole command is timed, model warm-start (when not cached) and Ray/actor start-up included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = ROOT / "docs" / "bench_default.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), *sys.argv[1:]], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return proc.returncode
    summary = json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    record = {
        "command": "python launch/grpo.py " + " ".join(sys.argv[1:]),
        "pass@1_before": summary["pass@1_before"], "pass@1_after": summary["pass@1_after"],
        "gain_points": 100 * (summary["pass@1_after"] - summary["pass@1_before"]),
        "train_wall_s": summary["wall_s"], "total_wall_s": wall, "steps": summary["steps"],
        "eval_before": summary["eval_before"], "eval_after": summary["eval_after"], "cpus": os.cpu_count(),
    }
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(json.dumps({k: record[k] for k in ("pass@1_before", "pass@1_after", "gain_points", "total_wall_s")}))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
