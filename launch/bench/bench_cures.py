"""Benchmark (not a test): CurES against uniform prompt sampling, over seeds, at equal samples generated.

    .venv/bin/python launch/bench/bench_cures.py [--config configs/grpo_toy.yaml] [--samples N] [--seeds 0 1 2]
        [--variants uniform cures ...] [--out docs/cures] [--tag toy] [key=value overrides for every run]

Each variant is the config plus its overrides (VARIANTS; `dapo*` rows use the dapo preset). A run trains
until it has generated --samples samples (data/samples_total: refills included, so DAPO is compared at
the samples it spent, not at its steps) and is evaluated on the test split before and after. Per run:
the mean of data/signal_frac (groups with a reward spread) over its steps, pass@1 before (one evaluation
per seed, shared by its variants) and after, its gain, the training minutes, the mean CurES metrics;
--alt adds pass@1 on the task phrased unlike its training prompts (test_alt: word_problems, arithmetic)
after training. Per variant: mean and 95% interval over the seeds (launch/bench/stats.py);
against the variant named in BASELINE on the same seeds: the paired interval of the difference and its
verdict, and the signal ratio. Writes <out>.json (one entry per --tag) and the table into <out>.md
between `<!-- bench:<tag>:begin -->` and `<!-- bench:<tag>:end -->`.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from md_block import write_block  # noqa: E402
from stats import fmt_ci, mean_ci, paired_ci, verdict  # noqa: E402

CURES_PAPER = {"data.sampler": "cures", "data.cures.prior": "uniform", "data.cures.replacement": False}
VARIANTS: dict[str, dict] = {
    "uniform": {"data.sampler": "uniform"},
    "cures": {"data.sampler": "cures"},  # the defaults (pooled prior, draws with replacement, allocation)
    "cures_paper": CURES_PAPER,          # the paper's Beta(1, 1) prior and the code's draw order
    "cures_code": {**CURES_PAPER, "data.cures.form": "code"},  # the released sampler's temperature
    "cures_noalloc": {"data.sampler": "cures", "data.cures.allocation": False},
    "dapo": {"algorithm.preset": "dapo", "data.sampler": "uniform"},
    "dapo_cures": {"algorithm.preset": "dapo", "data.sampler": "cures"},
}
BASELINE = {"dapo_cures": "dapo"}  # else "uniform"
MEANS = ("data/signal_frac", "rollout/reward_mean", "cures/seen_frac", "cures/alloc_std", "cures/max_prob_vs_uniform",
         "rollout/gen_rounds")


def run(variant: str, seed: int, args, overrides: dict, before_cache: dict[int, float]) -> dict:
    """One run to --samples samples; the evaluation before training is shared by a seed's runs (the same
    model, test prompts and evaluation seed: the variants differ only in sampling and algorithm)."""
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    over = {**overrides, **VARIANTS[variant], "trainer.seed": seed, "trainer.steps": 100_000,
            "logging.wandb": False, "logging.report": False, "trainer.output_dir": str(ROOT / "runs" / "bench_cures"),
            "trainer.run_name": f"{args.tag}_{variant}_s{seed}_{time.strftime('%H%M%S')}"}
    trainer = Trainer(load(args.config, over))
    t0 = time.perf_counter()
    try:
        if seed not in before_cache:
            before_cache[seed] = trainer.evaluate()["eval/pass@1"]
        steps: list[dict] = []
        while not steps or steps[-1]["data/samples_total"] < args.samples:
            m = trainer.step()
            steps.append({k: m[k] for k in (*MEANS, "data/samples_total") if k in m})
            print(f"[{variant} s{seed}] step {trainer.step_idx} samples {m['data/samples_total']:.0f} "
                  f"signal {m['data/signal_frac']:.2f} reward {m['rollout/reward_mean']:.3f}", flush=True)
        train_s = time.perf_counter() - t0
        after = trainer.evaluate()["eval/pass@1"]
        alt = {}
        if args.alt:  # the task phrased unlike its training prompts
            from bench_real_model import _alt_eval

            alt = {"test_alt_after": _alt_eval(trainer)}
    finally:
        trainer.close()
    means = {k: sum(s[k] for s in steps if k in s) / len(steps) for k in MEANS if any(k in s for s in steps)}
    return {"variant": variant, "seed": seed, "steps": len(steps), "samples": steps[-1]["data/samples_total"],
            "pass@1_before": before_cache[seed], "pass@1_after": after, "gain": after - before_cache[seed], **alt,
            "train_s": round(train_s, 1), **{f"mean:{k}": v for k, v in means.items()}}


def summarize(runs: list[dict], variants: list[str]) -> dict:
    """Per variant: mean and 95% interval of each figure over seeds; paired against its baseline."""
    by = {v: sorted((r for r in runs if r["variant"] == v), key=lambda r: r["seed"]) for v in variants}
    out = {}
    for v, rs in by.items():
        if not rs:
            continue
        keys = ("mean:data/signal_frac", "pass@1_after", "gain", "samples", "train_s", "test_alt_after")
        row = {k: mean_ci([r[k] for r in rs]) for k in keys if all(k in r for r in rs)}
        row["seeds"] = [r["seed"] for r in rs]
        base = BASELINE.get(v, "uniform")
        if v != base and by.get(base):
            common = sorted({r["seed"] for r in rs} & {r["seed"] for r in by[base]})
            pick = lambda group, k: [next(r[k] for r in group if r["seed"] == s) for s in common]  # noqa: E731
            sig = paired_ci(pick(rs, "mean:data/signal_frac"), pick(by[base], "mean:data/signal_frac"))
            gain = paired_ci(pick(rs, "gain"), pick(by[base], "gain"))
            ratio = row["mean:data/signal_frac"]["mean"] / max(1e-9, mean_ci(pick(by[base], "mean:data/signal_frac"))["mean"])
            row["vs"] = {"baseline": base, "seeds": common, "signal_frac_diff": sig, "signal_verdict": verdict(sig["ci95"]),
                         "signal_ratio": ratio, "gain_diff": gain, "gain_verdict": verdict(gain["ci95"])}
        out[v] = row
    return out


def table(summary: dict) -> str:
    alt = any("test_alt_after" in row for row in summary.values())
    lines = ["| variant | seeds | samples | train min | signal_frac | pass@1 after | gain |"
             + (" test_alt after |" if alt else "") + " vs baseline: signal diff (ratio) | gain diff |",
             "|---|---|---|---|---|---|---|" + ("---|" if alt else "") + "---|---|"]
    for v, row in summary.items():
        vs = row.get("vs")
        cmp_sig = (f"{fmt_ci(vs['signal_frac_diff'])} ({vs['signal_ratio']:.2f}x), {vs['signal_verdict']}"
                   if vs else "baseline")
        cmp_gain = f"{fmt_ci(vs['gain_diff'], 100, 1)} pts, {vs['gain_verdict']}" if vs else ""
        cells = [v, str(len(row["seeds"])), f"{row['samples']['mean']:.0f}",
                 f"{row['train_s']['mean'] / 60:.1f}" if "train_s" in row else "-",
                 fmt_ci(row["mean:data/signal_frac"]), fmt_ci(row["pass@1_after"], 100, 1), fmt_ci(row["gain"], 100, 1)]
        if alt:
            cells.append(fmt_ci(row["test_alt_after"], 100, 1) if "test_alt_after" in row else "-")
        lines.append("| " + " | ".join(cells + [cmp_sig, cmp_gain]) + " |")
    return "\n".join(lines)


def write(out: Path, tag: str, record: dict) -> None:
    path = out.with_suffix(".json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data[tag] = record
    path.write_text(json.dumps(data, indent=1) + "\n")
    write_block(out.with_suffix(".md"), f"bench:{tag}", table(record["summary"]))


def main(argv: list[str] | None = None) -> None:
    from rltrain.config.hardware import cpu_description
    from rltrain.config.loader import parse_overrides

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "grpo_toy.yaml"))
    ap.add_argument("--samples", type=int, default=15360, help="samples generated per run (toy: 60 steps x 256)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["uniform", "cures", "cures_paper", "cures_code"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "cures"))
    ap.add_argument("--tag", default="toy")
    ap.add_argument("--reuse", action="store_true", help="keep the runs <out>.json already holds under --tag")
    ap.add_argument("--alt", action="store_true", help="also score test_alt after training (word_problems, arithmetic)")
    args, rest = ap.parse_known_args(argv)
    overrides = parse_overrides(rest)
    flat: dict = {}

    def _flatten(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                _flatten(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    _flatten(overrides)
    out = Path(args.out)
    path = out.with_suffix(".json")
    done = json.loads(path.read_text()).get(args.tag, {}).get("runs", []) if args.reuse and path.exists() else []
    runs = list(done)
    before_cache = {r["seed"]: r["pass@1_before"] for r in runs}
    command = "python launch/bench/bench_cures.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def record() -> dict:
        return {"config": os.path.relpath(args.config, ROOT), "samples": args.samples, "overrides": flat,
                "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"), "command": command, "runs": runs,
                "summary": summarize(runs, args.variants)}

    for seed in args.seeds:  # seeds outermost: an interrupted bench leaves whole seeds
        for v in args.variants:
            if not any(r["variant"] == v and r["seed"] == seed for r in runs):
                runs.append(run(v, seed, args, flat, before_cache))
                write(out, args.tag, record())
    write(out, args.tag, record())
    print(table(record()["summary"]))


if __name__ == "__main__":
    main()
