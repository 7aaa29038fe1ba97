"""Benchmark (not a test): train every single-turn preset from the same initial model with the same
budget and seed, and tabulate what each one does to pass@k and entropy.

    nice -n 10 .venv/bin/python launch/bench/bench_presets.py [--steps 60] [--presets grpo,dapo+forking]
        [--config configs/grpo_toy.yaml] [--lr 1e-4] [--lr-for psr=2e-4 ...] [--out docs/presets]
        [--history runs/bench_presets/presets_history.json] [overrides like rollout.n_samples=8]

Every preset runs the one base config (--config, default configs/grpo_toy.yaml) with
`algorithm.preset=<preset>`, `trainer.steps=--steps`, `eval.n_samples=--eval-samples` and the
overrides given; a single row is the same as
`python launch/grpo.py --config configs/grpo_toy.yaml algorithm.preset=dapo trainer.steps=60 eval.n_samples=16`.
A fresh Trainer per preset (one Ray session for all); each preset sees the same prompts in the same
order (trainer.seed) except where its data policy regenerates. Per preset: test pass@k before and
after (unbiased estimator over --eval-samples = 16 samples per test prompt; the table shows
k = 1, 4, 16, the JSON every power of two), the mean rollout/entropy of the first and last steps,
reward, and wall time (start-up and both evaluations included). The learning rate of a preset is
--lr-for, else --lr, else learner.lr of the base config.

Writes a compact summary <out>.json (every figure of the table, and per logged metric its
mean/min/max over the steps plus every 10th step; no full history) and the table into <out>.md
between the markers `<!-- bench:begin -->` / `<!-- bench:end -->` (the text around them is kept);
with `--tag T` the files are <out>_T.json and the markers `<!-- bench:T:begin -->` /
`<!-- bench:T:end -->`, so a second run (another seed) sits beside the first. The full per-step
history goes to --history (default runs/bench_presets/<out name>[_T]_history.json, gitignored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRESETS = ["grpo", "dr_grpo", "dapo", "dapo+forking", "gtpo", "dcpo", "bapo", "pacs", "nsr", "psr",
           "w_reinforce", "gspo"]

BASE_CONFIG = ROOT / "configs" / "grpo_toy.yaml"
TRACE_EVERY = 10  # the summary keeps every 10th step (and the last) of each logged metric
SUMMARY_NOTE = (f"per_step: mean/min/max of each logged metric over the steps; trace: the values of the "
                f"metrics that vary at the listed steps (every {TRACE_EVERY}th and the last). "
                f"Full per-step histories: --history.")


def table_ks(n: int) -> tuple[int, ...]:
    """pass@k columns of the table: 1, 4 and n (the evaluation's samples per prompt)."""
    return tuple(dict.fromkeys(k for k in (1, 4, n) if k <= n))


# per-step metrics kept in the history (the telltales of every preset live in these namespaces)
HISTORY_NAMESPACES = ("rollout", "actor", "forking", "gtpo", "dcpo", "bapo", "pacs", "nsr", "gspo", "reward", "is")

# the metrics that show each preset's own mechanism acting (mean over the steps in the table); "+" overlays add up
MECHANISM = {
    "grpo": ["actor/clipfrac_low", "actor/clipfrac_high", "rollout/frac_reward_zero_std"],
    "dr_grpo": ["actor/clipfrac_low", "actor/clipfrac_high"],
    "dapo": ["actor/clipfrac_high", "reward/overlong_penalty_frac", "rollout/gen_rounds"],
    "forking": ["forking/selected_frac"],
    "gtpo": ["gtpo/conflict_frac", "gtpo/filtered_frac"],
    "dcpo": ["dcpo/nonzero_adv_frac", "dcpo/clip_high_mean", "actor/clipfrac_high"],
    "bapo": ["bapo/c_low_mean", "bapo/c_high_mean", "bapo/balance", "actor/clipfrac_low"],
    "pacs": ["pacs/critic_acc"],
    "nsr": ["nsr/kept_frac"], "psr": ["nsr/kept_frac"], "w_reinforce": ["nsr/kept_frac"],
    "gspo": ["gspo/seq_ratio", "actor/clipfrac_low", "actor/clipfrac_high"],
}


def mechanism_keys(preset: str) -> list[str]:
    keys = [k for part in preset.split("+") for k in MECHANISM.get(part, [])] + ["actor/ppo_kl"]
    return list(dict.fromkeys(keys))


def markers(tag: str) -> tuple[str, str]:
    t = f"{tag}:" if tag else ""
    return f"<!-- bench:{t}begin -->", f"<!-- bench:{t}end -->"


def preset_lr(preset: str, args) -> float:
    if preset in args.lr_for:
        return args.lr_for[preset]
    if args.lr is not None:
        return args.lr
    from rltrain.config import load

    return load(args.config).learner.lr


def summarize_history(history: dict[str, list], every: int = TRACE_EVERY) -> dict:
    """Per metric: mean/min/max over the steps, and (unless constant) its values at steps 1, 1 + every,
    ... and the last.

    ``history`` is column-wise (metric -> one value or None per step), as run_preset records it.
    """
    n = max((len(v) for v in history.values()), default=0)
    idx = sorted(set(range(0, n, every)) | ({n - 1} if n else set()))
    stats, trace = {}, {"step": [i + 1 for i in idx]}
    for key, vals in sorted(history.items()):
        finite = [v for v in vals if v is not None and math.isfinite(v)]
        if finite:
            stats[key] = {"mean": round(sum(finite) / len(finite), 4), "min": min(finite), "max": max(finite)}
        if len(finite) < len(vals) or len(set(finite)) > 1:
            trace[key] = [vals[i] if i < len(vals) else None for i in idx]
    return {"per_step": stats, "trace": trace}


def compact_row(row: dict) -> dict:
    """A row of the summary JSON: every scalar figure, the history summarised (see summarize_history)."""
    out = {k: v for k, v in row.items() if k != "history"}
    if "history" in row:
        out.update(summarize_history(row["history"]))
    return out


def dumps_compact(obj, indent: int = 0) -> str:
    """JSON with one key per line, but a list or dict of plain values on one line (small files)."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict) and any(isinstance(v, (dict, list)) for v in obj.values()):
        items = [f"{pad}{json.dumps(str(k))}: {dumps_compact(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [pad + dumps_compact(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj)


def run_preset(preset: str, lr: float, args, out_dir: Path, model_path: str) -> dict:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    fixed = {
        "model.path": model_path, "algorithm.preset": preset, "learner.lr": lr,
        "trainer.steps": args.steps, "trainer.seed": args.seed, "trainer.output_dir": str(out_dir),
        "trainer.run_name": preset.replace("+", "-"), "eval.n_samples": args.eval_samples,
        "eval.max_prompts": args.eval_prompts, "logging.wandb": False, "logging.console": False,
        "rollout.engine": "transformers",
    }
    # command-line form (values as JSON, which YAML parses back), the user's overrides last so they win
    cfg = load(args.config, [f"{k}={json.dumps(v)}" for k, v in fixed.items()] + list(args.overrides))
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    try:
        t_ready = time.perf_counter()
        before = trainer.evaluate()
        history = []
        t_train = time.perf_counter()
        for _ in range(cfg.trainer.steps):
            m = trainer.step()
            trainer.tracker.log(m, step=trainer.step_idx)
            history.append({k: round(float(v), 4) for k, v in m.items()
                            if isinstance(v, (int, float)) and k.split("/")[0] in HISTORY_NAMESPACES})
        train_s = time.perf_counter() - t_train
        after = trainer.evaluate()
    finally:
        trainer.close()
    wall = time.perf_counter() - t0
    tail = history[-args.last:] if history else []

    def mean_of(key: str, rows: list[dict]) -> float | None:
        vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
        return sum(vals) / len(vals) if vals else None

    return {
        "preset": preset, "lr": lr, "steps": cfg.trainer.steps,
        **{f"{k.split('/')[1]}_before": v for k, v in before.items() if k.startswith("eval/pass@")},
        **{f"{k.split('/')[1]}_after": v for k, v in after.items() if k.startswith("eval/pass@")},
        "entropy_first": mean_of("rollout/entropy", history[: args.last]),
        "entropy_last": mean_of("rollout/entropy", tail),
        "reward_first": mean_of("rollout/reward_mean", history[: args.last]),
        "reward_last": mean_of("rollout/reward_mean", tail),
        "response_len_after": after.get("eval/response_length_mean"),
        "gen_rounds_mean": mean_of("rollout/gen_rounds", history),
        "mechanism": {k: v for k in mechanism_keys(preset) if (v := mean_of(k, history)) is not None},
        "startup_s": t_ready - t0, "train_s": train_s, "wall_s": wall,
        "history": {k: [h.get(k) for h in history] for k in sorted({k for h in history for k in h})},  # columns
    }


def fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def table(rows: list[dict], n: int) -> str:
    ks = table_ks(n)[1:]
    head = ("| preset | lr | pass@1 before | pass@1 after | Δ pass@1 | "
            + "".join(f"pass@{k} before → after | " for k in ks) + "entropy first → last | wall s | mechanism |")
    lines = [head, "|" + "---|" * (8 + len(ks))]
    for r in rows:
        d1 = None if r["pass@1_after"] is None else r["pass@1_after"] - r["pass@1_before"]
        lines.append(
            f"| {r['preset']} | {r['lr']:g} | {fmt(r['pass@1_before'])} | {fmt(r['pass@1_after'])} | "
            f"{'+' if d1 is not None and d1 >= 0 else ''}{fmt(d1)} | "
            + "".join(f"{fmt(r.get(f'pass@{k}_before'))} → {fmt(r.get(f'pass@{k}_after'))} | " for k in ks)
            + f"{fmt(r['entropy_first'], False)} → {fmt(r['entropy_last'], False)} | {r['wall_s']:.0f} | "
            + ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in r.get("mechanism", {}).items()) + " |")
    return "\n".join(lines)


def write_md(path: Path, block: str, tag: str = "") -> None:
    begin, end = markers(tag)
    text = path.read_text() if path.exists() else f"# Presets\n\n{begin}\n{end}\n"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = f"{pre}{begin}\n{block}\n{end}{post}"
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{block}\n{end}\n"
    path.write_text(text)


def parse_args(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        epilog="Any other argument is a config override applied to every preset, in the forms launch/grpo.py "
               "takes: a.b=1, --a.b=1 or --a.b 1.")
    ap.add_argument("--steps", type=int, default=60, help="training steps per preset (same for all)")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    ap.add_argument("--config", default=str(BASE_CONFIG), help="base config of every preset")
    ap.add_argument("--lr", type=float, default=None,
                    help="one learning rate for every preset (default: learner.lr of --config)")
    ap.add_argument("--lr-for", action="append", default=[], metavar="PRESET=LR",
                    help="learning rate for one preset (repeatable); wins over --lr and the config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-prompts", type=int, default=200, help="test prompts")
    ap.add_argument("--eval-samples", type=int, default=16, help="samples per test prompt (pass@k up to this k)")
    ap.add_argument("--last", type=int, default=5, help="steps averaged for the first/last entropy and reward")
    ap.add_argument("--out", default=str(ROOT / "docs" / "presets"),
                    help="writes the summary <out>.json and the table into <out>.md")
    ap.add_argument("--history", default=None, metavar="PATH",
                    help="full per-step history JSON (default: runs/bench_presets/<out name>[_tag]_history.json)")
    ap.add_argument("--tag", default="", help="a second table beside the first (e.g. seed1)")
    ap.add_argument("--run-dir", default=None, help="run directories (default: a temporary directory)")
    args, overrides = ap.parse_known_args(argv)
    args.overrides = overrides
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    lr_for = {}
    for kv in args.lr_for:
        k, _, v = kv.partition("=")
        lr_for[k] = float(v)
    args.lr_for = lr_for
    return args


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import ray

    from rltrain.toy.warm_start import ensure_default_model

    args = parse_args(argv)
    model_path = str(ensure_default_model())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_root = Path(args.run_dir or tempfile.mkdtemp(prefix="bench_presets_"))
    ray.init(include_dashboard=False, log_to_driver=False)
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        for preset in args.presets:
            lr = preset_lr(preset, args)
            print(f"[bench] {preset} lr={lr:g} steps={args.steps}", flush=True)
            r = run_preset(preset, lr, args, run_root / f"{time.strftime('%H%M%S')}", model_path)
            rows.append(r)
            print(f"[bench] {preset}: pass@1 {fmt(r['pass@1_before'])} -> {fmt(r['pass@1_after'])}, "
                  f"pass@{args.eval_samples} {fmt(r[f'pass@{args.eval_samples}_before'])} -> "
                  f"{fmt(r[f'pass@{args.eval_samples}_after'])}, "
                  f"entropy {fmt(r['entropy_first'], False)} -> {fmt(r['entropy_last'], False)}, "
                  f"{r['wall_s']:.0f}s", flush=True)
    finally:
        ray.shutdown()
    total = time.perf_counter() - t0
    record = {
        "command": "python launch/bench/bench_presets.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": os.path.relpath(args.config, ROOT), "model": model_path, "steps": args.steps, "seed": args.seed,
        "eval_prompts": args.eval_prompts, "eval_samples": args.eval_samples, "cpus": os.cpu_count(),
        "total_wall_s": total,
        "git_head": os.popen(f"git -C {ROOT} rev-parse --short HEAD 2>/dev/null").read().strip() or "?",
    }
    name = f"{out.name}_{args.tag}" if args.tag else out.name
    history = Path(args.history or ROOT / "runs" / "bench_presets" / f"{name}_history.json")
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text(json.dumps({**record, "rows": rows}))
    summary = out.with_name(f"{name}.json")
    summary.write_text(dumps_compact({**record, "note": SUMMARY_NOTE, "rows": [compact_row(r) for r in rows]})
                       + "\n")
    block = (f"Command: `{record['command']}` — {args.steps} steps per preset, seed {args.seed}, "
             f"{args.eval_prompts} test prompts x {args.eval_samples} samples, {os.cpu_count()} CPUs, "
             f"{total / 60:.1f} min in all (git {record['git_head']}). pass@k in %, unbiased estimator; "
             f"entropy = mean rollout/entropy (nats/token) over the first / last {args.last} steps; "
             f"wall = start-up + 2 evaluations + training.\n\n{table(rows, args.eval_samples)}")
    write_md(Path(f"{out}.md"), block, args.tag)
    print(table(rows, args.eval_samples))
    print(f"{out}.md", summary, history, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
