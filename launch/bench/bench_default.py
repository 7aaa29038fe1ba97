"""Benchmark (not a test): run the embedded default end to end and record test pass@1 before/after
and the wall time.

    .venv/bin/python launch/bench/bench_default.py [--out docs/bench_default.json] [overrides...]

Every argument other than --out goes to launch/grpo.py (e.g. `trainer.schedule=one_step_off`).
The record (a few lines: pass@k before/after, wall times) is written to --out. The whole command is
timed, model warm-start (when not cached) and Ray/actor start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_default.json"), help="where the record goes")
    args, overrides = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), *overrides], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return proc.returncode
    summary = json.loads((ROOT / proc.stdout.strip().splitlines()[-1]).read_text())  # grpo.py ran in ROOT
    record = {
        "command": "python launch/grpo.py " + " ".join(overrides),
        "pass@1_before": summary["pass@1_before"], "pass@1_after": summary["pass@1_after"],
        "gain_points": 100 * (summary["pass@1_after"] - summary["pass@1_before"]),
        "train_wall_s": summary["wall_s"], "total_wall_s": wall, "steps": summary["steps"],
        "eval_before": summary["eval_before"], "eval_after": summary["eval_after"], "cpus": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(json.dumps({k: record[k] for k in ("pass@1_before", "pass@1_after", "gain_points", "total_wall_s")}))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
