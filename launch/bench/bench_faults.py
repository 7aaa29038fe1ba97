"""Fault injection (a benchmark, not a test): each fault against the embedded default, and what it costs.

    .venv/bin/python launch/bench/bench_faults.py [--steps 8] [--out docs/faults.json]

Faults: a rollout worker killed between steps (`ray.kill`, as the OOM killer would); a learner rank
killed; SIGTERM to a running `launch/grpo.py`, then its printed resume command; the newest checkpoint
corrupted before a resume; the disk filling up while a checkpoint is written (a real RLIMIT_FSIZE);
a reward that returns NaN / inf / raises for some samples. For each: survived (the run reached its
last step), steps lost, samples lost, time to recover. Prints a table (docs/reliability.md has it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
RUNS = ROOT / "runs" / "bench_faults"
BASE = {"rollout.prompts_per_step": 8, "logging.wandb": False, "logging.report": False, "logging.console": False,
        "eval.max_prompts": 16, "trainer.output_dir": str(RUNS)}


def _trainer(name: str, steps: int, **over):
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    return Trainer(load(None, {**BASE, "trainer.steps": steps, "trainer.run_name": f"{name}-{time.strftime('%H%M%S')}",
                               **over}))


def killed_worker(steps: int) -> dict:
    import ray

    t = _trainer("worker", steps, **{"rollout.num_workers": 2})
    try:
        samples = 0
        for k in range(steps):
            if k == steps // 2:
                ray.kill(t.actors.workers[1])
                t0 = time.perf_counter()
            m = t.step()
            samples += m["rollout/samples"]
            if k == steps // 2:
                recover = time.perf_counter() - t0  # the whole step with the fault
        lost = steps * BASE["rollout.prompts_per_step"] * t.cfg.rollout.n_samples - samples
        return {"survived": True, "steps_lost": 0, "samples_lost": int(lost), "recover_s": recover,
                "note": f"faults/worker_restarts={m['faults/worker_restarts']:.0f}; the step with the fault took "
                        f"{recover:.1f} s (its others ~{m['timing_s/step']:.1f} s)"}
    finally:
        t.close()


def killed_learner(steps: int) -> dict:
    import ray

    t = _trainer("learner", steps, **{"trainer.save_every": 2})
    try:
        while t.step_idx < steps // 2 + 1:  # a checkpoint at steps // 2, then one step past it
            t._run_step_or_recover()
        ray.kill(t.actors.learners[0])
        t0 = time.perf_counter()
        t._run_step_or_recover()  # fails, restarts every actor from the last checkpoint
        recover = time.perf_counter() - t0
        lost = steps // 2 + 2 - (t.step_idx + 1)
        while t.step_idx < steps:
            t._run_step_or_recover()
        return {"survived": True, "steps_lost": lost, "samples_lost": None, "recover_s": recover,
                "note": f"every actor restarted from the checkpoint of step {steps // 2} "
                        f"(faults/actor_restarts={t.actor_restarts}); the steps after it ran again"}
    finally:
        t.close()


def sigterm_then_resume(steps: int) -> dict:
    name = f"sigterm-{time.strftime('%H%M%S')}"
    argv = [sys.executable, "launch/grpo.py", f"trainer.steps={steps}", "eval.max_prompts=16", "logging.wandb=false",
            "logging.report=false", f"trainer.output_dir={RUNS}", f"trainer.run_name={name}"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if f"step {steps // 2}/" in line:
            break
    t_sig = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=300)[0]
    stop_s = time.perf_counter() - t_sig
    stopped = int(re.search(r"stopped by SIGTERM at step (\d+)", out).group(1))
    resume = next(ln for ln in out.splitlines() if ln.startswith("  python launch/grpo.py"))
    t0 = time.perf_counter()
    again = subprocess.run([sys.executable, *shlex.split(resume)[1:]], cwd=ROOT, capture_output=True, text=True)
    done = json.loads(Path(again.stdout.strip().splitlines()[-1]).read_text())
    return {"survived": again.returncode == 0 and done["steps"] == steps, "steps_lost": 0, "samples_lost": 0,
            "recover_s": None, "note": f"exit {proc.returncode} {stop_s:.1f} s after the signal, at step {stopped}; "
                                       f"the resume ran steps {stopped + 1}-{steps} in {time.perf_counter() - t0:.0f} s "
                                       f"(start-up included)"}


def corrupt_checkpoint(steps: int) -> dict:
    t = _trainer("corrupt", steps, **{"trainer.save_every": 2})
    run_dir = t.files.run_dir
    try:
        for _ in range(steps // 2):
            t._run_step()
    finally:
        t.close()
    newest = sorted((run_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[-1]
    state = newest / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    t0 = time.perf_counter()
    r = _trainer("corrupt", steps, **{"trainer.resume": str(run_dir)})
    try:
        recover = time.perf_counter() - t0
        at = r.step_idx
        while r.step_idx < steps:
            r.step()
        return {"survived": True, "steps_lost": steps // 2 - at, "samples_lost": None, "recover_s": recover,
                "note": f"{newest.name} corrupt: resumed at step {at} from the previous checkpoint"}
    finally:
        r.close()


def disk_full(steps: int) -> dict:
    from rltrain.driver.recovery import checkpoint
    from rltrain.driver.recovery.checkpoint import CheckpointError

    t = _trainer("diskfull", steps)
    try:
        t.step()
        first = t.save()
        t.step()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
        try:
            t.save()
            message = "saved?"
        except CheckpointError as e:
            message = str(e)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old)
        checkpoint.verify(first)
        return {"survived": False, "steps_lost": 1, "samples_lost": None, "recover_s": None,
                "note": f"stops with: {message[:150]}...; {first.name} verified intact"}
    finally:
        t.close()


def bad_rewards(steps: int) -> dict:
    t = _trainer("rewards", steps, **{"reward.functions": [{"name": "exact_match"},
                                                           {"name": "rltrain_fault_rewards:sometimes_bad", "weight": 0.0}]})
    try:
        dropped = sum(t.step()["rollout/dropped_samples"] for _ in range(steps))
        return {"survived": True, "steps_lost": 0, "samples_lost": int(dropped), "recover_s": 0.0,
                "note": "samples whose reward is NaN, inf or raised are dropped from the update, each logged"}
    finally:
        t.close()


FAULTS = {"rollout worker killed": killed_worker, "learner rank killed": killed_learner,
          "SIGTERM, then resume": sigterm_then_resume, "newest checkpoint corrupt": corrupt_checkpoint,
          "disk full while saving": disk_full, "reward NaN / inf / raises": bad_rewards}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "faults.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # rltrain_fault_rewards, for the reward actors too
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent),
                                                           os.environ.get("PYTHONPATH")) if p)
    rows = {}
    for name in args.faults:
        rows[name] = FAULTS[name](args.steps)
        print(name, rows[name], flush=True)
    print("\n| fault | survived | steps lost | samples lost | time to recover | what happened |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        rec = "-" if r["recover_s"] is None else f"{r['recover_s']:.1f} s"
        print(f"| {name} | {'y' if r['survived'] else 'n'} | {'-' if r['steps_lost'] is None else r['steps_lost']} | "
              f"{'-' if r['samples_lost'] is None else r['samples_lost']} | {rec} | {r['note']} |")
    Path(args.out).write_text(json.dumps({"steps": args.steps, "faults": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
