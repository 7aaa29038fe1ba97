"""Config sweeps on Ray Tune: every trial is one rltrain run on the same Ray cluster.

    run_sweep(load_sweep("configs/sweeps/toy_lr.yaml"), "toy_lr")

Tune generates the trials (grid or random search over dotted run-config keys), runs as many at once
as the cluster's CPUs allow (each trial asks for a placement group of a head bundle plus one bundle
per actor of its run, `resources_per_trial.cpus` split between them; the run places its actors
there, rltrain/workers/placement.py), stops trailing trials early with ASHA when asked, and goes
on when a trial fails. A trial reports each evaluation (`eval/*` at its step) to Tune; its run is
an ordinary run directory under `<output_dir>/<name>/trials/<trial>` with its own W&B run, all
trials of a sweep in one W&B group (offline without a key).

At the end the sweep writes, under `<output_dir>/<name>/`: `summary.md` (the table: trial,
overrides, status, pass@1 before, best and final, steps, wall time), `summary.json`, the best
trial's full run config as `best_config.yaml` (runnable with `launch/grpo.py --config`) and
`report.png` overlaying the trials.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import ray
import yaml

from rltrain.config.sweep import SweepConfig, trial_overrides

TRIALS, TUNE = "trials", "tune"


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for key, p in sweep.parameters.items():
        if p.values is not None:
            space[key] = tune.grid_search(p.values) if sweep.search == "grid" else tune.choice(p.values)
        elif p.distribution == "uniform":
            space[key] = tune.uniform(p.min, p.max)
        elif p.distribution == "log_uniform":
            space[key] = tune.loguniform(p.min, p.max)
        else:  # int_uniform: both ends included
            space[key] = tune.randint(int(p.min), int(p.max) + 1)
    return space


def trial_resources(sweep: SweepConfig, base_cfg: Any) -> Any:
    """A head bundle for the trial's driver plus one bundle per actor of its run."""
    import algorithms
    from algorithms import BatchField
    from ray import tune

    from rltrain.workers.placement import actor_roles, role_resources

    algo = algorithms.build_driver(base_cfg.algorithm.spec())
    roles = actor_roles(base_cfg, algo.needs(BatchField.REF_LOGP), algo.needs(BatchField.VALUES))
    head = 0.01
    share = math.floor(10000 * (sweep.resources_per_trial.cpus - head) / len(roles)) / 10000
    bundles = [{"CPU": share, **role_resources(base_cfg, r)} for r in roles]
    return tune.PlacementGroupFactory([{"CPU": head}] + bundles, strategy="PACK")


def run_trial(params: dict[str, Any], *, sweep: SweepConfig, out_dir: str, cwd: str, group: str) -> None:
    """One Tune trial: an rltrain run with the sweep's overrides and this trial's parameters."""
    from ray import tune

    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    os.chdir(cwd)  # Tune starts a trial in its own directory; the run's relative paths are the sweep's
    run_name = Path(tune.get_context().get_trial_dir()).name
    threads = max(1, int(sweep.resources_per_trial.cpus))
    overrides = {"learner.threads": threads, "rollout.threads": threads, **trial_overrides(sweep, params),
                 "trainer.run_name": run_name, "trainer.output_dir": str(Path(out_dir) / TRIALS),
                 "logging.wandb_group": group}
    trainer = Trainer(load(sweep.base, overrides))

    def report(step: int, metrics: dict[str, float]) -> None:
        if sweep.metric in metrics:
            tune.report({"step": step, **{k: v for k, v in metrics.items() if k.startswith("eval/")}})

    trainer.tracker.subscribe(report)
    try:
        trainer.run()
    finally:
        trainer.close()


def _resources_fn(sweep: SweepConfig):
    from rltrain.config import load

    def resources(params: dict[str, Any]):
        return trial_resources(sweep, load(sweep.base, trial_overrides(sweep, params)))
    return resources


def _tune_config(sweep: SweepConfig, steps: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    scheduler = None
    if sweep.scheduler.name == "asha":
        # max_t past the last step: ASHA stops a trial at max_t, and a trial at its last step must be let
        # finish (final evaluation, checkpoint, export)
        scheduler = ASHAScheduler(time_attr="step", max_t=steps + 1, grace_period=sweep.scheduler.grace_period,
                                  reduction_factor=sweep.scheduler.reduction_factor)
    return tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples, scheduler=scheduler,
                           max_concurrent_trials=sweep.max_concurrent or None,
                           search_alg=BasicVariantGenerator(random_state=sweep.seed),
                           trial_dirname_creator=lambda t: f"trial_{t.trial_id.rsplit('_', 1)[-1]}")


def prepare_models(sweep: SweepConfig) -> None:
    """Build or convert each model the trials use once, here, before trials race to build it."""
    from rltrain.config import load
    from rltrain.driver.run_setup import resolve_model

    seen = set()
    for params in sweep.validation_points():
        cfg = load(sweep.base, trial_overrides(sweep, params))
        key = (cfg.model.path, cfg.model.size, cfg.data.task)
        if key not in seen and (cfg.model.path is None or not Path(cfg.model.path).is_absolute()):
            seen.add(key)
            resolve_model(cfg)


def run_sweep(sweep: SweepConfig, default_name: str) -> Path:
    """Run every trial, write the summary files and return the path of summary.json."""
    from functools import partial

    from ray import tune

    from rltrain.config import load

    name = sweep.name or f"{default_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(sweep.output_dir).resolve() / name
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists; pick another sweep name (name=...)")
    out_dir.mkdir(parents=True)
    steps = load(sweep.base, sweep.overrides).trainer.steps
    prepare_models(sweep)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, **({"num_cpus": sweep.num_cpus} if sweep.num_cpus else {}))
    trainable = tune.with_resources(
        partial(run_trial, sweep=sweep, out_dir=str(out_dir), cwd=os.getcwd(), group=name), _resources_fn(sweep))
    tuner = tune.Tuner(trainable, param_space=param_space(sweep), tune_config=_tune_config(sweep, steps),
                       run_config=tune.RunConfig(name=TUNE, storage_path=str(out_dir), verbose=1,
                                                 failure_config=tune.FailureConfig(max_failures=0)))
    t0 = time.perf_counter()
    results = tuner.fit()
    rows = [trial_row(r, steps, sweep.metric) for r in results]
    return write_summary(out_dir, sweep, rows, time.perf_counter() - t0)


def trial_row(result: Any, steps: int, metric: str) -> dict[str, Any]:
    """One line of the table from a Tune result: its reports (eval steps) and its run directory."""
    trial = Path(result.path).name
    frame = result.metrics_dataframe
    reports = [] if frame is None or frame.empty else frame.to_dict("records")
    values = [(int(r["step"]), float(r[metric])) for r in reports if metric in r and r[metric] == r[metric]]
    trained = [v for s, v in values if s > 0]
    last_step = max((s for s, _ in values), default=0)
    summary_path = Path(result.path).parent.parent / TRIALS / trial / "summary.json"
    status = "done" if summary_path.is_file() else ("stopped early" if values else "not started")
    if result.error is not None:
        status = "error: " + (str(result.error).strip().splitlines() or ["?"])[-1][:160]
    return {"trial": trial, "overrides": {k: v for k, v in result.config.items()}, "status": status,
            "before": next((v for s, v in values if s == 0), None), "best": max(trained, default=None),
            "final": trained[-1] if trained else None, "steps": last_step if values else 0,
            "wall_s": float(result.metrics.get("time_total_s", 0.0)) if result.metrics else 0.0,
            "run_dir": str(summary_path.parent)}


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def summary_table(rows: list[dict[str, Any]], metric: str) -> str:
    head = ["trial", "overrides", "status", f"{metric} before", "best", "final", "steps", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        over = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["overrides"].items())
        lines.append("| " + " | ".join([r["trial"], over, r["status"], _fmt(r["before"]), _fmt(r["best"]),
                                        _fmt(r["final"]), str(r["steps"]), f"{r['wall_s']:.0f}"]) + " |")
    return "\n".join(lines)


def write_summary(out_dir: Path, sweep: SweepConfig, rows: list[dict[str, Any]], wall_s: float) -> Path:
    from rltrain.driver.reporting.report import read_metrics, write_report

    sign = 1 if sweep.mode == "max" else -1
    scored = [r for r in rows if r["best"] is not None]
    best = max(scored, key=lambda r: sign * r["best"]) if scored else None
    table = summary_table(rows, sweep.metric)
    (out_dir / "summary.md").write_text(f"# Sweep {out_dir.name}\n\n{table}\n")
    best_config = None
    if best is not None:
        cfg = yaml.safe_load((Path(best["run_dir"]) / "config.yaml").read_text())
        cfg["trainer"].update(run_name=None, output_dir="runs")
        cfg["logging"]["wandb_group"] = None
        best_config = out_dir / "best_config.yaml"
        best_config.write_text(f"# best trial of sweep {out_dir.name}: {best['trial']} "
                               f"({sweep.metric} {best['best']:.3f})\n" + yaml.safe_dump(cfg, sort_keys=False))
    runs = [Path(r["run_dir"]) for r in rows if (Path(r["run_dir"]) / "metrics.jsonl").is_file()]
    report = write_report([read_metrics(d) for d in runs], out_dir / "report.png", f"sweep {out_dir.name}") \
        if runs else None
    summary = {"name": out_dir.name, "metric": sweep.metric, "mode": sweep.mode, "wall_s": wall_s, "trials": rows,
               "best_trial": best and best["trial"], "best_config": best_config and str(best_config),
               "table": str(out_dir / "summary.md"), "report": report and str(report)}
    path = out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(table, flush=True)
    if best is not None:
        print(f"[rltrain] best: {best['trial']} ({sweep.metric} {best['best']:.3f}); config {best_config}", flush=True)
    return path
