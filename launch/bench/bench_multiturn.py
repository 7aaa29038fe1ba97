"""Benchmark (not a test): IGPO vs outcome-only GRPO on the toy search environment, same budget and seed.

    nice -n 10 .venv/bin/python launch/bench/bench_multiturn.py [--steps 120] [--seeds 0 1] [--out docs/multiturn]

Each variant is `python launch/grpo.py --config configs/<variant>_search.yaml` (same environment,
model, data, steps and seed; IGPO adds its turn-level information-gain rewards and a k3 KL term).
Per run: held-out success rate (pass@1) every --eval-every steps against samples and wall time; the
mean turns and tool calls and IGPO's information-gain metrics over the first and last 10 steps.
Writes <out>.json and the table into <out>.md between `<!-- bench:begin -->` / `<!-- bench:end -->`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_offpolicy import ROOT, run, run_all  # noqa: E402

CONFIGS = {"grpo": "configs/grpo_search.yaml", "igpo": "configs/igpo_search.yaml"}
MECHANISM = ("multiturn/turns_mean", "multiturn/tool_calls_mean", "multiturn/obs_token_frac", "multiturn/env_errors",
             "igpo/info_gain_mean", "igpo/gt_prob_first", "igpo/gt_prob_last", "rollout/reward_mean")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--out", default=str(ROOT / "docs" / "multiturn"))
    args = p.parse_args()
    run_all(args.variants, args.seeds,
            lambda name, seed: run(name, seed, args.steps, args.eval_every, {name: {}}, str(ROOT / CONFIGS[name]),
                                   MECHANISM, "bench_multiturn"),
            Path(args.out), detail="mechanism_last10")


if __name__ == "__main__":
    main()
