"""Soak (a benchmark, not a test): a long run of the embedded default, watched from outside.

    .venv/bin/python launch/bench/bench_soak.py [--steps 1000] [--out docs/soak.json]

While `Trainer.run()` goes (checkpoints every `--save-every` steps, evaluations every
`--eval-every`), a thread samples every Ray actor's resident memory (VmRSS of the `ray::Learner`,
`ray::RolloutWorker`, ... processes) and the driver's every few seconds. Afterwards it compares the
machine before and after the run: processes left behind, listening TCP sockets, the driver's open
file descriptors, files in the temporary directory. Reports per actor the RSS after warm-up (at 10%
of the steps), at the end and the growth; the step time of the first and last tenth (warm-up
excluded); what leaked. The issue's bar: RSS growth under 10% after warm-up, step time flat,
nothing leaked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
RUNS = ROOT / "runs" / "bench_soak"


def _ray_actors() -> dict[str, psutil.Process]:
    """Live actor processes by a stable label (`Learner`, `RolloutWorker`, ...; numbered when several)."""
    found: dict[str, psutil.Process] = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if not cmd.startswith("ray::") or "IDLE" in cmd:
            continue
        role = cmd.split()[0][len("ray::"):].split(".")[0]
        if role in ("", "JobSupervisor"):
            continue
        label, k = role, 1
        while label in found and found[label].pid != p.pid:
            k += 1
            label = f"{role}{k}"
        found[label] = p
    return found


class RssSampler(threading.Thread):
    """Samples (seconds since start, label -> RSS MB) every `every_s` seconds until stopped."""

    def __init__(self, every_s: float) -> None:
        super().__init__(daemon=True)
        self.every_s, self.samples, self.stop = every_s, [], threading.Event()
        self.start_t = time.monotonic()
        self.pids: dict[str, int] = {}

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(self.every_s):
            row = {"driver": me.memory_info().rss / 2**20}
            for label, proc in _ray_actors().items():
                try:
                    row[label] = proc.memory_info().rss / 2**20
                    self.pids.setdefault(label, proc.pid)
                except psutil.Error:
                    pass
            self.samples.append((time.monotonic() - self.start_t, row))


def _machine_state() -> dict:
    me = psutil.Process()
    listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    ray_procs = {p.pid: " ".join(p.info["cmdline"] or [])[:80] for p in psutil.process_iter(["cmdline"])
                 if any(k in " ".join(p.info["cmdline"] or []) for k in ("ray::", "raylet", "gcs_server", "ray/_private"))}
    tmp = tempfile.gettempdir()
    return {"listening": listening, "ray_processes": ray_procs, "driver_fds": me.num_fds(),
            "children": [c.pid for c in me.children(recursive=True)],
            "tmp_files": {n for n in os.listdir(tmp) if n.startswith(("rltrain", "rewards-sbx"))}}


def _rss_summary(samples: list, warm_s: float) -> dict:
    labels = sorted({k for _, row in samples for k in row})
    out = {}
    for label in labels:
        series = [(t, row[label]) for t, row in samples if label in row]
        after = [v for t, v in series if t >= warm_s]
        if len(after) < 2:
            continue
        start, end, peak = after[0], after[-1], max(after)
        out[label] = {"rss_after_warmup_mb": round(start, 1), "rss_end_mb": round(end, 1), "rss_peak_mb": round(peak, 1),
                      "growth_pct": round(100 * (end - start) / start, 1)}
    return out


def _step_times(metrics_path: Path, steps: int) -> dict:
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    times = [(r["step"], r["timing_s/step"]) for r in rows if "timing_s/step" in r]
    tenth = max(1, steps // 10)
    first = [t for s, t in times if tenth < s <= 2 * tenth]  # the second tenth: warm-up excluded
    last = [t for s, t in times if s > steps - tenth]
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    rewards = [(r["step"], r["rollout/reward_mean"]) for r in rows if "rollout/reward_mean" in r]
    warm = [(s, t) for s, t in times if s > tenth]
    xm, ym = mean([s for s, _ in warm]), mean([t for _, t in warm])
    slope = (sum((s - xm) * (t - ym) for s, t in warm) / max(1e-9, sum((s - xm) ** 2 for s, _ in warm)))
    return {"step_s_by_tenth": [round(mean([t for s, t in times if k * tenth < s <= (k + 1) * tenth]), 3)
                                for k in range(10)],
            "step_s_fit_growth_pct": round(100 * slope * (steps - tenth) / ym, 1),  # least squares after warm-up
            "step_s_second_tenth": round(mean(first), 3), "step_s_last_tenth": round(mean(last), 3),
            "step_time_ratio_last_to_early": round(mean(last) / mean(first), 3),
            "reward_first_tenth": round(mean([v for s, v in rewards if s <= tenth]), 3),
            "reward_last_tenth": round(mean([v for s, v in rewards if s > steps - tenth]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import ray

    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    before = _machine_state()
    name = f"soak-{time.strftime('%H%M%S')}"
    cfg = load(None, {"trainer.steps": args.steps, "trainer.save_every": args.save_every, "eval.every": args.eval_every,
                      "trainer.output_dir": str(RUNS), "trainer.run_name": name, "logging.wandb": False,
                      "logging.report": False, "logging.console": False})
    t0 = time.monotonic()
    trainer = Trainer(cfg)
    sampler = RssSampler(args.sample_s)
    sampler.start()
    during = _machine_state()
    try:
        summary = trainer.run()
    finally:
        sampler.stop.set()
        sampler.join()
        trainer.close()
        ray.shutdown()
    wall = time.monotonic() - t0
    time.sleep(3)  # let Ray's processes finish exiting
    after = _machine_state()
    warm_s = sampler.samples[max(0, len(sampler.samples) // 10)][0] if sampler.samples else 0.0
    leaked_procs = {pid: cmd for pid, cmd in after["ray_processes"].items() if pid not in before["ray_processes"]}
    result = {
        "steps": args.steps, "wall_s": round(wall, 1), "samples_taken": len(sampler.samples),
        "rss": _rss_summary(sampler.samples, warm_s),
        "timing": _step_times(RUNS / name / "metrics.jsonl", args.steps),
        "checkpoints_kept": sorted(p.name for p in (RUNS / name / "checkpoints").glob("step_*")),
        "listening_during_run_not_loopback": sorted(f"{ip}:{port}" for ip, port in during["listening"] - before["listening"]
                                                    if not ip.startswith("127.")),
        "leaked": {"processes": leaked_procs,
                   "listening_sockets": sorted(f"{ip}:{port}" for ip, port in after["listening"] - before["listening"]),
                   "driver_fds": after["driver_fds"] - before["driver_fds"],
                   "tmp_files": sorted(after["tmp_files"] - before["tmp_files"])},
        "pass@1": {"before": summary.get("pass@1_before"), "after": summary.get("pass@1_after")},
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
