"""Benchmark (not a test): off-policy training on the built-in task, same model, seed and step budget.

    nice -n 10 .venv/bin/python launch/bench/bench_offpolicy.py [--steps 120] [--seeds 0 1]
        [--variants sync async_k1 ...] [--out docs/offpolicy]

Variants (each one `python launch/grpo.py` run with the overrides listed in VARIANTS):
- sync: GRPO, generate then learn; async_k1 / async_k2 / async_k4: generation k versions ahead;
- remix: ReMix on the replay schedule (40% replayed groups, 2 updates per batch, last 2 steps);
- bapo_stale{2,4,8} / ppo_stale{2,4,8}: k optimizer updates per rollout batch (learner.mini_batches=k,
  BAPO's "staleness k"), BAPO's adaptive bounds vs the same stages with fixed PPO clipping [0.8, 1.2];
- partial{2,4}: partial rollouts, at most 2 / 4 new tokens per sample per round (of 8), the rest
  resumed in later rounds or steps (rltrain/driver/flow/partial.py).
Per run: test pass@1 every --eval-every steps against generated samples and wall time, entropy over
training, the mechanism's metrics (clip fractions, ppo_kl, ratio max, BAPO bounds, staleness, replay).
Writes <out>.json (compact) and the table into <out>.md between `<!-- bench:begin -->` / `<!-- bench:end -->`.
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
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS: dict[str, dict] = {
    "sync": {},
    "async_k1": {"trainer.schedule": "async", "trainer.max_staleness": 1},
    "async_k2": {"trainer.schedule": "async", "trainer.max_staleness": 2},
    "async_k4": {"trainer.schedule": "async", "trainer.max_staleness": 4},
    "remix": {"algorithm.preset": "remix", "trainer.schedule": "replay", "replay.fraction": 0.4,
              "replay.updates_per_batch": 2, "replay.depth": 2},
}
for _k in (2, 4, 8):  # BAPO's "staleness k": k optimizer updates per rollout batch
    VARIANTS[f"bapo_stale{_k}"] = {"algorithm.preset": "bapo", "learner.mini_batches": _k}
    VARIANTS[f"ppo_stale{_k}"] = {"algorithm.preset": "bapo", "learner.mini_batches": _k,
                                  "algorithm.objective": {"name": "ppo_clip", "dual_clip": 3.0}}
VARIANTS["partial2"] = {"rollout.partial_tokens": 2}
VARIANTS["partial4"] = {"rollout.partial_tokens": 4}
MECHANISM = ("rollout/staleness_mean", "rollout/gen_rounds", "rollout/partial_resumed", "rollout/partial_waiting_groups", "actor/ppo_kl", "actor/clipfrac_low", "actor/clipfrac_high", "is/ratio_max",
             "bapo/c_low_mean", "bapo/c_high_mean", "bapo/balance", "replay/fraction", "remix/convex_kl")


def run(name: str, seed: int, steps: int, eval_every: int, variants: dict[str, dict] = VARIANTS,
        config: str | None = None, mechanism: tuple[str, ...] = MECHANISM, out_dir: str = "bench_offpolicy") -> dict:
    """One training run of `variants[name]` (over `config`, default: the built-in defaults) with pass@1
    every `eval_every` steps (and at the end)."""
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    over = {**variants[name], "trainer.steps": steps, "trainer.seed": seed, "eval.every": eval_every,
            "trainer.output_dir": str(ROOT / "runs" / out_dir),
            "trainer.run_name": f"{name}_s{seed}_{time.strftime('%H%M%S')}"}
    trainer = Trainer(load(config, over))
    try:
        t0 = time.perf_counter()
        before = trainer.evaluate()
        curve = [{"step": 0, "samples": 0, "wall_s": 0.0, "pass@1": before["eval/pass@1"]}]
        history, samples = [], 0.0
        while trainer.step_idx < steps:
            m = trainer.step()
            samples += m["rollout/samples"]
            history.append(m)
            if trainer.step_idx % eval_every == 0 or trainer.step_idx == steps:
                ev = trainer.evaluate()
                curve.append({"step": trainer.step_idx, "samples": samples,
                              "wall_s": round(time.perf_counter() - t0, 1), "pass@1": ev["eval/pass@1"]})
    finally:
        trainer.close()
    return summarize(name, seed, curve, history, variants[name], mechanism)


def _mean(history: list[dict], key: str, part: slice = slice(None)) -> float | None:
    vals = [m[key] for m in history[part] if key in m]
    return round(sum(vals) / len(vals), 5) if vals else None


def summarize(name: str, seed: int, curve: list[dict], history: list[dict], overrides: dict,
              mechanism: tuple[str, ...] = MECHANISM) -> dict:
    ent = "actor/entropy"
    return {"variant": name, "seed": seed, "overrides": overrides, "curve": curve,
            "pass@1_before": curve[0]["pass@1"], "pass@1_after": curve[-1]["pass@1"],
            "samples": curve[-1]["samples"], "wall_s": curve[-1]["wall_s"],
            "entropy_first10": _mean(history, ent, slice(0, 10)), "entropy_last10": _mean(history, ent, slice(-10, None)),
            "entropy_trace": [_mean(history, ent, slice(i, i + 10)) for i in range(0, len(history), 20)],
            "mechanism": {k: v for k in mechanism if (v := _mean(history, k)) is not None},
            "mechanism_first10": {k: v for k in mechanism if (v := _mean(history, k, slice(0, 10))) is not None},
            "mechanism_last10": {k: v for k in mechanism if (v := _mean(history, k, slice(-10, None))) is not None}}


def table(rows: list[dict]) -> str:
    head = ("| variant | seed | pass@1 before -> after | best pass@1 (step) | samples | wall s | entropy first -> last "
            "10 | mechanism (means) |\n|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        best = max(r["curve"], key=lambda c: c["pass@1"])
        mech = ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in r["mechanism"].items())
        lines.append(f"| {r['variant']} | {r['seed']} | {100 * r['pass@1_before']:.1f}% -> "
                     f"{100 * r['pass@1_after']:.1f}% | {100 * best['pass@1']:.1f}% ({best['step']}) | "
                     f"{r['samples']:.0f} | {r['wall_s']:.0f} | {r['entropy_first10']:.3f} -> "
                     f"{r['entropy_last10']:.3f} | {mech} |")
    return head + "\n".join(lines) + "\n"


def write(rows: list[dict], out: Path) -> None:
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    md = out.with_suffix(".md")
    text = md.read_text() if md.exists() else "<!-- bench:begin -->\n<!-- bench:end -->\n"
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    md.write_text(text[: text.index(begin) + len(begin)] + "\n" + table(rows) + text[text.index(end):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   default=[v for v in VARIANTS if v not in ("bapo_stale2", "ppo_stale2", "bapo_stale8", "ppo_stale8",
                                                       "partial2", "partial4")])
    p.add_argument("--out", default=str(ROOT / "docs" / "offpolicy"))
    args = p.parse_args()
    run_all(args.variants, args.seeds, lambda name, seed: run(name, seed, args.steps, args.eval_every), Path(args.out))


def run_all(names: list[str], seeds: list[int], run_one, out: Path, detail: str = "") -> list[dict]:
    """`run_one(name, seed)` for every seed and variant in one Ray session; writes <out>.json / .md after
    each run; prints a line per run (plus the row's `detail` field when given) and the table."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    for seed in seeds:
        for name in names:
            rows.append(run_one(name, seed))
            r = rows[-1]
            extra = f"; {detail} {r[detail]}" if detail else ""
            print(f"{name} seed {seed}: pass@1 {r['pass@1_before']:.3f} -> {r['pass@1_after']:.3f}, "
                  f"{r['samples']:.0f} samples, {r['wall_s']:.0f} s{extra}", flush=True)
            write(rows, out)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
