"""Benchmark (not a test): learning from a noisy verifier on the built-in task, corrected or not.

    nice -n 10 .venv/bin/python launch/bench/bench_noisy.py [--steps 120] [--seeds 0] [--fn-rate 0.3]

The training reward is `exact_match` passed through `noisy_channel` (each correct answer scored 0 with
probability --fn-rate: false negatives); evaluation always uses the clean `exact_match`
(`eval.reward`). Variants, same model, seed and budget:
- clean_grpo / noisy_grpo: GRPO on the clean / noisy reward;
- noisy_grpo_backward: GRPO on the backward-corrected noisy reward (affine: the group baseline and std
  scaling cancel it, so it should match noisy_grpo);
- noisy_forward: the forward correction as per-sample weights (advantage `noisy_forward`, no baseline);
- clean_reinforce / noisy_reinforce / noisy_reinforce_backward: REINFORCE without a baseline on the clean,
  noisy and backward-corrected rewards (where the backward correction can act).
Writes <out>.json and the table into <out>.md between `<!-- bench:begin -->` / `<!-- bench:end -->`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_offpolicy import run, write  # noqa: E402


def variants(fn_rate: float) -> dict[str, dict]:
    clean = {"functions": [{"name": "exact_match"}]}
    channel = {"name": "noisy_channel", "reward": "exact_match", "fn_rate": fn_rate, "seed": 0}
    noisy = [{"name": "noisy_channel", "params": {k: v for k, v in channel.items() if k != "name"}}]
    backward = [{"name": "noisy", "params": {"reward": channel, "fn_rate": fn_rate, "mode": "backward"}}]
    gold = {"eval.reward": clean}
    reinforce = {"algorithm.advantage": {"name": "reinforce"}}
    return {
        "clean_grpo": {**gold},
        "noisy_grpo": {**gold, "reward.functions": noisy},
        "noisy_grpo_backward": {**gold, "reward.functions": backward},
        "noisy_forward": {**gold, "reward.functions": noisy,
                          "algorithm.advantage": {"name": "noisy_forward", "fn_rate": fn_rate}},
        "clean_reinforce": {**gold, **reinforce},
        "noisy_reinforce": {**gold, **reinforce, "reward.functions": noisy},
        "noisy_reinforce_backward": {**gold, **reinforce, "reward.functions": backward},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--fn-rate", type=float, default=0.3)
    p.add_argument("--out", default=str(ROOT / "docs" / "noisy"))
    args = p.parse_args()
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    table = variants(args.fn_rate)
    rows = []
    for seed in args.seeds:
        for name in table:
            rows.append(run(name, seed, args.steps, args.steps, table))
            r = rows[-1]
            print(f"{name} seed {seed}: clean pass@1 {r['pass@1_before']:.3f} -> {r['pass@1_after']:.3f}", flush=True)
            write(rows, Path(args.out))


if __name__ == "__main__":
    main()
