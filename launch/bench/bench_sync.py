"""Benchmark (not a test): weight sync by Ray's object store vs a gloo broadcast vs colocated placement.

    .venv/bin/python launch/bench/bench_sync.py [--models tiny smollm2] [--steps 4] [--out docs/sync.json]

For each model (the embedded tiny default; SmolLM2-135M-Instruct in float32 and with bf16 engines)
and each way (`sync.method: object_store`, `sync.method: collective`, `placement: colocated`), one
run of a few steps with a small generation budget (the sync is what is measured): median sync
seconds and bytes over the steady steps, GB/s against this machine's memory read bandwidth
(measured in the same run), step time, and the peak RSS of the learner and rollout processes
(colocated: one process holds both). Prints a table and writes a JSON record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import ROOT, machine_limits  # noqa: E402  (also puts the repo on sys.path)

MODELS = {
    "tiny": {"config": "grpo_toy.yaml", "over": {"rollout.prompts_per_step": 8, "rollout.n_samples": 4}},
    "smollm2": {"config": "smollm2_gsm.yaml", "over": {"rollout.prompts_per_step": 2, "rollout.n_samples": 2,
                                                       "rollout.max_new_tokens": 16, "model.dtype": "float32",
                                                       "rollout.dtype": "auto", "learner.compile_layers": False}},
    "smollm2_bf16_engine": {"config": "smollm2_gsm.yaml", "over": {
        "rollout.prompts_per_step": 2, "rollout.n_samples": 2, "rollout.max_new_tokens": 16,
        "model.dtype": "float32", "rollout.dtype": "bfloat16", "learner.compile_layers": False}},
}
WAYS = {"object_store": {"sync.method": "object_store"}, "collective": {"sync.method": "collective"},
        "colocated": {"placement": "colocated"}}


def run(model: str, way: str, steps: int) -> dict:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    spec = MODELS[model]
    cfg = load(str(ROOT / "configs" / spec["config"]), {
        **spec["over"], **WAYS[way], "trainer.steps": steps, "eval.greedy": False,
        "trainer.output_dir": str(ROOT / "runs" / "bench_sync"), "trainer.run_name": f"{model}_{way}_{time.strftime('%H%M%S')}",
        "logging.wandb": False, "logging.console": False, "logging.report": False})
    trainer = Trainer(cfg)
    try:
        metrics = [trainer.step() for _ in range(steps)]
    finally:
        trainer.close()
    steady = metrics[1:] or metrics

    def med(key: str) -> float:
        return statistics.median(m[key] for m in steady)
    return {"sync_s": med("sync/seconds"), "sync_bytes": med("sync/bytes"), "gb_per_s": med("sync/gb_per_s"),
            "step_s": med("timing_s/step"), "learner_peak_rss_mb": max(m["perf/learner_peak_rss_mb"] for m in metrics),
            "rollout_peak_rss_mb": max(m["perf/rollout_peak_rss_mb"] for m in metrics),
            "all_sync_s": [m["sync/seconds"] for m in metrics]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "docs" / "sync.json"))
    args = parser.parse_args()
    record = {"limits": machine_limits(), "steps": args.steps, "runs": {}}
    bandwidth = record["limits"]["memory_read_gbs"]
    print(f"memory read bandwidth here: {bandwidth:.1f} GB/s", flush=True)
    for model in args.models:
        for way in args.ways:
            r = run(model, way, args.steps)
            r["vs_memory_bandwidth"] = r["gb_per_s"] / bandwidth
            record["runs"][f"{model}/{way}"] = r
            print(f"{model:20s} {way:13s} sync {r['sync_s']:.3f} s  {r['sync_bytes'] / 1e6:8.1f} MB  "
                  f"{r['gb_per_s']:6.2f} GB/s ({100 * r['vs_memory_bandwidth']:.1f}% of memory bw)  step {r['step_s']:.2f} s  "
                  f"RSS learner {r['learner_peak_rss_mb']:.0f} MB rollout {r['rollout_peak_rss_mb']:.0f} MB", flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
