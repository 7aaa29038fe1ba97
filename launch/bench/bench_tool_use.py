"""Benchmark (not a test): does the toy model learn to call the code interpreter? Over seeds.

    .venv/bin/python launch/bench/bench_tool_use.py [--steps 60] [--seeds 0 1 2] [--out docs/tool_use.json]

Runs configs/code_tool_toy.yaml (GRPO, the calc task: 2-digit products the model cannot compute but can
read off the interpreter; the warm start calls the asked product about 40% of the time) for --steps
steps per seed and records, per seed: held-out pass@1 before and after, and over the first and last 10
steps the tool calls per episode, the training reward, tool errors per episode, the share of episode
tokens that are observations (no loss on them) and the environment's seconds per episode; then the mean
and 95% interval over the seeds of each figure and of the last-minus-first change (launch/bench/stats.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("WANDB_MODE", "offline")

from stats import mean_ci, paired_ci, verdict  # noqa: E402

KEYS = ("multiturn/tool_calls_mean", "rollout/reward_mean", "multiturn/tool_errors_mean", "multiturn/obs_token_frac",
        "multiturn/env_seconds_mean", "multiturn/turns_mean")


def run(seed: int, steps: int) -> dict:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    cfg = load(str(ROOT / "configs" / "code_tool_toy.yaml"), {
        "trainer.seed": seed, "trainer.steps": steps, "logging.wandb": False, "logging.report": False,
        "trainer.output_dir": str(ROOT / "runs" / "bench_tool_use"),
        "trainer.run_name": f"code_s{seed}_{time.strftime('%H%M%S')}"})
    trainer = Trainer(cfg)
    try:
        before = trainer.evaluate()["eval/pass@1"]
        history = [trainer.step() for _ in range(steps)]
        after = trainer.evaluate()["eval/pass@1"]
    finally:
        trainer.close()
    window = lambda part, k: sum(m[k] for m in part) / len(part)  # noqa: E731
    return {"seed": seed, "pass@1_before": before, "pass@1_after": after,
            "first10": {k: window(history[:10], k) for k in KEYS}, "last10": {k: window(history[-10:], k) for k in KEYS}}


def summarize(runs: list[dict]) -> dict:
    """Mean and 95% interval over the seeds; last-minus-first changes and the pass@1 gain paired per seed."""
    summary = {"pass@1_before": mean_ci([r["pass@1_before"] for r in runs]),
               "pass@1_after": mean_ci([r["pass@1_after"] for r in runs]),
               "pass@1_gain": paired_ci([r["pass@1_after"] for r in runs], [r["pass@1_before"] for r in runs])}
    for k in KEYS:
        first, last = [r["first10"][k] for r in runs], [r["last10"][k] for r in runs]
        summary[k] = {"first10": mean_ci(first), "last10": mean_ci(last), "change": paired_ci(last, first)}
    summary["pass@1_gain"]["verdict"] = verdict(summary["pass@1_gain"]["ci95"])
    summary["multiturn/tool_calls_mean"]["change"]["verdict"] = verdict(summary["multiturn/tool_calls_mean"]["change"]["ci95"])
    return summary


def main(argv: list[str] | None = None) -> None:
    from rltrain.config.hardware import cpu_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "docs" / "tool_use.json"))
    args = ap.parse_args(argv)
    runs: list[dict] = []
    for seed in args.seeds:  # the record is rewritten after each seed: an interrupted bench keeps its seeds
        runs.append(run(seed, args.steps))
        record = {"cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
                  "seeds": [r["seed"] for r in runs],
                  "command": "python launch/bench/bench_tool_use.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "runs": runs, "summary": summarize(runs)}
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["summary"], indent=1))


if __name__ == "__main__":
    main()
