"""Benchmark (not a test): each method's paper claim on a testbed where its mechanism acts, against the
same-budget baseline, over seeds, with 95% intervals and a verdict.

    .venv/bin/python launch/bench/bench_claims.py [--methods nsr dcpo ...] [--seeds 0 1 2] [--reuse]
        [--out docs/claims]

The testbeds, arms and claims are data in launch/bench/claims_spec.py. A run is (testbed, arm, seed):
the testbed's config and overrides, the arm's algorithm, `trainer.seed`, the testbed's steps; the
evaluation before training is shared by a seed's arms on one testbed (same model, prompts and evaluation
seed). Per run: every evaluation figure after training, the mean of each logged metric over the steps and
over the first and last 10 steps, samples generated, training seconds; `curve_every` adds pass@1 at
those steps with the samples and seconds spent. Per claim: the method's and the baseline's figure (mean
and 95% interval over seeds, launch/bench/stats.py), the paired difference and the verdict: "superior"
claims hold when the difference's interval lies above 0, "noninferior" ones when it lies above -margin
(does not hold: below; inconclusive: otherwise). Runs are written to <out>_runs.json as they finish (an
interrupted bench keeps them; --reuse skips runs already there); the claims to <out>.json, one entry
per method, and the table into <out>.md between `<!-- bench:begin -->` and `<!-- bench:end -->`.
CurES's entry is copied from its own bench's record (claims_spec.CURES).
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

from claims_spec import ARMS, CLAIMS, CURES, TESTBEDS  # noqa: E402
from md_block import write_block  # noqa: E402
from stats import fmt_ci, mean_ci, noninferior_verdict, paired_ci, verdict  # noqa: E402

EDGE = 10  # steps averaged for a metric's "first" and "last" figures
# metrics a run record keeps (the learning and mechanism ones; timings and plumbing are left out)
KEPT = ("actor/", "rollout/", "data/", "is/", "bapo/", "dcpo/", "pacs/", "gtpo/", "igpo/", "nsr/", "forking/", "remix/",
        "replay/", "multiturn/")
# metrics a run record keeps over its first and last steps: the claims' mechanism metrics
EDGE_KEYS = frozenset({k for c in CLAIMS.values() for k in c["mechanism"]} | {"rollout/entropy", "rollout/reward_mean"})


def run_key(testbed: str, arm: str, seed: int) -> str:
    return f"{testbed}/{arm}/s{seed}"


def _eval(trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.evaluate().items()}


def one_run(testbed: str, arm: str, seed: int, before_cache: dict) -> dict:
    """Train `arm` on `testbed` with `seed`; figures after training, metric means, optional curve."""
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    tb = TESTBEDS[testbed]
    over = {**tb["over"], **ARMS[arm], "trainer.seed": seed, "trainer.steps": tb["steps"], "logging.wandb": False,
            "logging.report": False, "trainer.output_dir": str(ROOT / "runs" / "bench_claims"),
            "trainer.run_name": f"{testbed}_{arm}_s{seed}_{time.strftime('%H%M%S')}"}
    trainer = Trainer(load(str(ROOT / tb["config"]), over))
    steps: list[dict] = []
    curve: list[dict] = []
    train_s = 0.0
    try:
        key = f"{testbed}/s{seed}"
        if key not in before_cache:
            before_cache[key] = _eval(trainer)
        for i in range(tb["steps"]):
            t0 = time.perf_counter()
            m = trainer.step()
            train_s += time.perf_counter() - t0
            steps.append({k: float(v) for k, v in m.items() if isinstance(v, (int, float))})
            if i % 10 == 9:
                print(f"[{testbed}/{arm} s{seed}] step {i + 1} reward {m.get('rollout/reward_mean', 0):.3f}", flush=True)
            last = i + 1 == tb["steps"]
            if last:
                after = _eval(trainer)
            if tb.get("curve_every") and (i + 1) % tb["curve_every"] == 0:
                curve.append({"step": i + 1, "samples": steps[-1].get("data/samples_total"), "train_s": round(train_s, 1),
                              "pass@1": (after if last else _eval(trainer))["eval/pass@1"]})
    finally:
        trainer.close()
    keys = sorted({k for s in steps for k in s if k.startswith(KEPT)})
    edges = [k for k in keys if k in EDGE_KEYS]

    def avg(rows: list[dict], k: str) -> float | None:
        xs = [r[k] for r in rows if k in r]
        return sum(xs) / len(xs) if xs else None

    return {"testbed": testbed, "arm": arm, "seed": seed, "steps": len(steps), "before": before_cache[key],
            "after": after, "samples": steps[-1].get("data/samples_total"), "train_s": round(train_s, 1),
            "mean": {k: avg(steps, k) for k in keys}, "first": {k: avg(steps[:EDGE], k) for k in edges},
            "last": {k: avg(steps[-EDGE:], k) for k in edges}, **({"curve": curve} if curve else {})}


def save_runs(path: Path, runs: dict, cpu: str) -> None:
    """One line per run (a compact file)."""
    lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(r)}" for k, r in runs.items())
    path.write_text(f'{{"cpu": {json.dumps(cpu)}, "runs": {{\n{lines}\n}}}}\n')


def claim_verdict(kind: str, ci: list[float] | None, margin: float = 0.0) -> str:
    """"superior": the difference's interval above 0; "noninferior": above -margin."""
    if kind == "superior":
        return verdict(ci)
    if kind != "noninferior":
        raise ValueError(f"unknown claim kind {kind!r}")
    return noninferior_verdict(ci, margin)


def figure(run: dict, metric: str) -> float:
    """An evaluation figure after training; `<figure>_per_100_tokens`: that figure per 100 tokens of an
    evaluation episode or completion (token efficiency)."""
    if metric.endswith("_per_100_tokens"):
        return 100 * run["after"][metric.removesuffix("_per_100_tokens")] / run["after"]["eval/response_length_mean"]
    return run["after"][metric]


def compare(runs: dict, testbed: str, arm: str, baseline: str, metric: str, seeds: list[int]) -> dict | None:
    """Method and baseline figures over the seeds both have, and their paired difference."""
    common = [s for s in seeds if run_key(testbed, arm, s) in runs and run_key(testbed, baseline, s) in runs]
    if not common:
        return None
    a = [figure(runs[run_key(testbed, arm, s)], metric) for s in common]
    b = [figure(runs[run_key(testbed, baseline, s)], metric) for s in common]
    return {"testbed": testbed, "seeds": common, "mean": mean_ci(a), "baseline": mean_ci(b), "diff": paired_ci(a, b)}


def mechanism(runs: dict, testbed: str, arm: str, baseline: str, keys: list[str], seeds: list[int]) -> dict:
    """Per key: the arm's mean over steps and first -> last 10 steps (means over seeds), and the baseline's
    where it logs the key."""
    out = {}
    for k in keys:
        row = {}
        for who, name in (("method", arm), ("baseline", baseline)):
            rs = [runs[run_key(testbed, name, s)] for s in seeds if run_key(testbed, name, s) in runs]
            vals = {part: [r[part].get(k) for r in rs if r[part].get(k) is not None] for part in ("mean", "first", "last")}
            if vals["mean"]:
                row[who] = {part: sum(v) / len(v) for part, v in vals.items()}
        if row:
            out[k] = row
    return out


def claim_entry(method: str, spec: dict, runs: dict, seeds: list[int]) -> dict | None:
    main = compare(runs, spec["testbed"], spec["arm"], spec["baseline"], spec["metric"], seeds)
    if main is None:
        return None
    tb = TESTBEDS[spec["testbed"]]
    margin = spec.get("margin", 0.0)
    entry = {
        "method": method, "paper": spec["paper"], "claim": spec["claim"], "testbed": f"{spec['testbed']}: {tb['about']}",
        "budget": f"{tb['steps']} steps; {runs[run_key(spec['testbed'], spec['arm'], main['seeds'][0])]['samples']:.0f} "
                  f"samples generated (method), same steps for the baseline ({spec['baseline']})",
        "seeds": main["seeds"], "metric": spec["metric"], "mean": main["mean"]["mean"], "ci95": main["mean"]["ci95"],
        "baseline": spec["baseline"], "baseline_mean": main["baseline"]["mean"], "baseline_ci95": main["baseline"]["ci95"],
        "diff": main["diff"]["mean"], "diff_ci95": main["diff"]["ci95"], "kind": spec["kind"],
        **({"margin": margin} if spec["kind"] == "noninferior" else {}),
        "verdict": claim_verdict(spec["kind"], main["diff"]["ci95"], margin),
        "mechanism_metric": mechanism(runs, spec["testbed"], spec["arm"], spec["baseline"], spec["mechanism"],
                                      main["seeds"]),
        "command": f"python launch/bench/bench_claims.py --methods {method} --seeds {' '.join(map(str, main['seeds']))}",
    }
    extra = []
    for testbed in spec.get("also", []):
        c = compare(runs, testbed, spec["arm"], spec["baseline"], spec["metric"], seeds)
        if c:
            extra.append({**c, "metric": spec["metric"], "verdict": claim_verdict(spec["kind"], c["diff"]["ci95"], margin)})
    for metric in spec.get("also_metrics", []):
        c = compare(runs, spec["testbed"], spec["arm"], spec["baseline"], metric, seeds)
        if c:
            extra.append({**c, "metric": metric, "verdict": claim_verdict(spec["kind"], c["diff"]["ci95"], margin)})
    for other_arm in spec.get("also_arms", []):
        c = compare(runs, spec["testbed"], other_arm, spec["baseline"], spec["metric"], seeds)
        if c:
            extra.append({**c, "arm": other_arm, "verdict": claim_verdict(spec["kind"], c["diff"]["ci95"], margin),
                          "mechanism_metric": mechanism(runs, spec["testbed"], other_arm, spec["baseline"],
                                                        spec["mechanism"], seeds)})
    for other in spec.get("compare_also", []):
        c = compare(runs, spec["testbed"], spec["arm"], other, spec["metric"], seeds)
        if c:
            samples = {n: mean_ci([runs[run_key(spec["testbed"], n, s)]["samples"] for s in c["seeds"]])["mean"]
                       for n in (spec["arm"], other)}
            extra.append({**c, "against": other, "samples": samples,
                          "verdict_noninferior_3pts": claim_verdict("noninferior", c["diff"]["ci95"], 0.03)})
    if extra:
        entry["also"] = extra
    curves = {name: curve(runs, spec["testbed"], name, seeds)
              for name in [spec["arm"], spec["baseline"]] + spec.get("compare_also", [])}
    if any(curves.values()):
        entry["curves"] = {k: v for k, v in curves.items() if v}
    return entry


def curve(runs: dict, testbed: str, arm: str, seeds: list[int]) -> list[dict]:
    """pass@1 at each curve point with the samples and training seconds spent: means over the seeds."""
    rs = [runs[run_key(testbed, arm, s)] for s in seeds if run_key(testbed, arm, s) in runs]
    if not rs or not all(r.get("curve") for r in rs):
        return []
    return [{"step": pts[0]["step"], **{k: sum(p[k] for p in pts) / len(pts) for k in ("samples", "train_s", "pass@1")}}
            for pts in zip(*(r["curve"] for r in rs))]


def cures_entry() -> dict:
    path, tag = CURES["source"]
    rec = json.loads((ROOT / path).read_text())[tag]
    row, base = rec["summary"][CURES["variant"]], rec["summary"][CURES["baseline"]]
    vs = row["vs"]
    return {"method": "cures", "paper": CURES["paper"], "claim": CURES["claim"],
            "testbed": f"{tag}: the default task, a 256-prompt training pool, {rec['samples']} samples a run",
            "budget": f"{rec['samples']} samples generated, both arms", "seeds": vs["seeds"],
            "metric": "mean data/signal_frac (share of groups with a reward spread)",
            "mean": row["mean:data/signal_frac"]["mean"], "ci95": row["mean:data/signal_frac"]["ci95"],
            "baseline": CURES["baseline"], "baseline_mean": base["mean:data/signal_frac"]["mean"],
            "baseline_ci95": base["mean:data/signal_frac"]["ci95"], "diff": vs["signal_frac_diff"]["mean"],
            "diff_ci95": vs["signal_frac_diff"]["ci95"], "kind": "superior", "verdict": vs["signal_verdict"],
            "mechanism_metric": {"data/signal_frac ratio": vs["signal_ratio"]},
            "also": [{"metric": "pass@1 gain", "diff": vs["gain_diff"]["mean"], "diff_ci95": vs["gain_diff"]["ci95"],
                      "verdict": vs["gain_verdict"]}],
            "command": rec["command"]}


def _pts(stat_mean: float, ci: list[float] | None) -> str:
    return fmt_ci({"mean": stat_mean, "ci95": ci}, 100, 1)


def table(claims: dict) -> str:
    lines = ["| method | testbed | metric | method | baseline | difference (pts) | verdict | mechanism (method: first -> last 10 steps) |",
             "|---|---|---|---|---|---|---|---|"]
    for m, e in claims.items():
        if m == "cures":
            mech = f"signal ratio {e['mechanism_metric']['data/signal_frac ratio']:.2f}x"
        else:
            mech = "; ".join(f"{k} {v['method']['first']:.3g} -> {v['method']['last']:.3g}"
                             for k, v in e["mechanism_metric"].items() if "method" in v)
        lines.append(f"| {m} | {e['testbed'].split(':')[0]} | {e['metric'].replace('eval/', '')} | "
                     f"{_pts(e['mean'], e['ci95'])} | {e['baseline']} {_pts(e['baseline_mean'], e['baseline_ci95'])} | "
                     f"{_pts(e['diff'], e['diff_ci95'])} | {e['verdict']} ({e['kind']}) | {mech} |")
    return "\n".join(lines)


def details(runs: dict, seeds: list[int]) -> str:
    """Per testbed, every arm run on it: evaluation figures after training (means over seeds, in %), samples,
    training seconds, and the mechanism metrics of the claims on that testbed (first -> last 10 steps)."""
    out = []
    for tb, spec in TESTBEDS.items():
        arms = sorted({r["arm"] for r in runs.values() if r["testbed"] == tb and r["seed"] in seeds})
        if not arms:
            continue
        keys = list(dict.fromkeys(k for c in CLAIMS.values() if c["testbed"] == tb for k in c["mechanism"]))
        rs = {a: [runs[run_key(tb, a, s)] for s in seeds if run_key(tb, a, s) in runs] for a in arms}
        evals = [k for k in rs[arms[0]][0]["after"] if k.startswith("eval/pass@")]
        head = ["arm", "seeds", "before pass@1"] + [k.removeprefix("eval/") for k in evals] + ["samples", "train s"] + keys
        lines = [f"**{tb}** ({spec['steps']} steps)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for a in arms:
            group = rs[a]
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            cells = [a, str(len(group)), f"{100 * mean([r['before']['eval/pass@1'] for r in group]):.1f}"]
            cells += [f"{100 * mean([r['after'][k] for r in group]):.1f}" for k in evals]
            cells += [f"{mean([r['samples'] for r in group]):.0f}", f"{mean([r['train_s'] for r in group]):.0f}"]
            for k in keys:
                vals = [(r["first"].get(k), r["last"].get(k)) for r in group]
                cells.append("-" if any(None in v for v in vals) else
                             f"{mean([v[0] for v in vals]):.3g} -> {mean([v[1] for v in vals]):.3g}")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> None:
    from rltrain.config.hardware import cpu_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(CLAIMS), choices=list(CLAIMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "docs" / "claims"))
    ap.add_argument("--reuse", action="store_true", help="skip the runs <out>_runs.json already holds")
    ap.add_argument("--no-also", action="store_true", help="only each claim's main testbed")
    args = ap.parse_args(argv)
    out = Path(args.out)
    runs_path = out.parent / f"{out.name}_runs.json"
    saved = json.loads(runs_path.read_text()) if runs_path.exists() else {"runs": {}}
    runs: dict = saved["runs"]  # other methods' runs stay; the selected ones are re-run unless --reuse
    done = set(runs) if args.reuse else set()
    before_cache = {f"{r['testbed']}/s{r['seed']}": r["before"] for r in runs.values()} if args.reuse else {}
    todo = []
    for m in args.methods:
        spec = CLAIMS[m]
        beds = [spec["testbed"]] + ([] if args.no_also else spec.get("also", []))
        for tb in beds:
            main_only = [] if tb != spec["testbed"] else spec.get("also_arms", []) + spec.get("compare_also", [])
            for arm in [spec["arm"], spec["baseline"]] + main_only:
                todo.append((tb, arm))
    todo = list(dict.fromkeys(todo))
    for seed in args.seeds:  # seeds outermost: an interrupted bench leaves whole seeds
        for tb, arm in todo:
            if run_key(tb, arm, seed) in done:
                continue
            runs[run_key(tb, arm, seed)] = one_run(tb, arm, seed, before_cache)
            save_runs(runs_path, runs, cpu_description())
    all_runs = runs
    save_runs(runs_path, runs, saved.get("cpu") or cpu_description())
    claims_path = out.with_suffix(".json")
    claims = json.loads(claims_path.read_text()) if claims_path.exists() else {}
    for m in CLAIMS:  # every claim whose runs are there: a re-run baseline changes its other claims too
        entry = claim_entry(m, CLAIMS[m], all_runs, args.seeds)
        if entry:
            claims[m] = {**entry, "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d")}
    claims["cures"] = cures_entry()
    order = list(CLAIMS) + ["cures"]
    claims = {m: claims[m] for m in order if m in claims}
    claims_path.write_text(json.dumps(claims, indent=1) + "\n")
    write_block(out.with_suffix(".md"), "bench", table(claims))
    write_block(out.with_suffix(".md"), "details", details(all_runs, args.seeds))
    print(table(claims))


if __name__ == "__main__":
    main()
