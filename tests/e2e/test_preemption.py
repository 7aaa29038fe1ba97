"""Pre-emption and checkpoint integrity, through the real trainer and its actors: SIGTERM finishes
the step, writes a checkpoint, prints the resume command and exits 0; a second signal exits at once
and the last complete checkpoint stays valid; a corrupt newest checkpoint falls back to the previous
one; a save that runs out of space (a real RLIMIT_FSIZE) names the path and leaves the previous
checkpoint intact."""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltrain.config import load
from rltrain.driver.recovery import checkpoint
from rltrain.driver.recovery.checkpoint import CheckpointError
from rltrain.driver.recovery.preemption import descendants
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "launch/grpo.py", "trainer.steps=500", "eval.max_prompts=8", "logging.wandb=false",
            "logging.report=false", f"trainer.output_dir={tmp_path}", "trainer.run_name=pre", *extra]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_step(proc: subprocess.Popen, step: int, timeout: float = 300) -> list[str]:
    lines, t0 = [], time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if f"step {step}/" in line:
            return lines
    proc.kill()
    raise AssertionError("".join(lines[-30:]))


def test_sigterm_checkpoints_prints_the_resume_command_and_exits_0(tmp_path):
    proc = _start(tmp_path)
    _wait_for_step(proc, 3)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert time.time() - t0 < 60
    resume = next(line for line in out.splitlines() if line.startswith("  python launch/grpo.py"))
    assert f"--resume {tmp_path / 'pre'}" in resume
    ckpt = checkpoint.latest(tmp_path / "pre" / "checkpoints")
    stopped_at = int(ckpt.name.split("_")[1])
    assert stopped_at >= 3
    summary = json.loads(Path(out.strip().splitlines()[-1]).read_text())
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] == stopped_at
    # the printed command resumes (here told to stop two steps later)
    argv = shlex.split(resume.strip())[2:] + [f"trainer.steps={stopped_at + 2}"]
    again = subprocess.run([sys.executable, "launch/grpo.py", *argv], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resumed from {ckpt} at step {stopped_at}" in again.stdout
    assert json.loads(Path(again.stdout.strip().splitlines()[-1]).read_text())["steps"] == stopped_at + 2


def test_a_second_signal_exits_at_once_and_the_last_checkpoint_stays_valid(tmp_path):
    proc = _start(tmp_path, "trainer.save_every=1")
    _wait_for_step(proc, 4)
    children = descendants(proc.pid)  # the local Ray cluster: GCS, raylet, agents, workers
    assert len(children) > 3
    proc.send_signal(signal.SIGTERM)
    while "finishing this step" not in proc.stdout.readline():  # the first one is taken (signals do not queue)
        pass
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "second signal" in out
    ckpt = checkpoint.latest(tmp_path / "pre" / "checkpoints")
    assert ckpt is not None and int(ckpt.name.split("_")[1]) >= 3
    checkpoint.verify(ckpt)  # every file there, as its manifest says
    time.sleep(2)
    alive = [p for p in children if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, f"processes the exited driver started still run: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def _cfg(tmp_path, default_model, **over):
    base = {"model.path": default_model, "rollout.prompts_per_step": 4, "rollout.n_samples": 4,
            "rollout.max_new_tokens": 6, "trainer.steps": 3, "trainer.output_dir": str(tmp_path),
            "trainer.run_name": "ck", "eval.max_prompts": 4, "logging.wandb": False, "logging.report": False,
            "data.n_train": 100, "data.n_test": 8}
    base.update(over)
    return load(None, base)


def test_out_of_space_keeps_the_previous_checkpoint_and_a_corrupt_newest_one_falls_back(
        tmp_path, ray_session, default_model, capsys):
    trainer = Trainer(_cfg(tmp_path, default_model))
    root = tmp_path / "ck" / "checkpoints"
    try:
        trainer.step()
        first = trainer.save()
        trainer.step()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # this process: trainer_state.pt no longer fits
        try:
            with pytest.raises(CheckpointError, match=r"step 2 to .*step_2\.tmp: File too large.*"
                                                      r"the previous checkpoint .*step_1 is intact"):
                trainer.save()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
        assert not (root / "step_2.tmp").exists() and not (root / "step_2").exists()
        checkpoint.verify(first)
        assert checkpoint.latest(root) == first
        assert trainer.save() == root / "step_2"  # with space again, the next save completes
    finally:
        trainer.close()
    # the newest checkpoint half-written (a crash mid-copy): the resume passes over it to step 1
    state = root / "step_2" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="trainer_state.pt does not match the manifest"):
        checkpoint.verify(root / "step_2")
    resumed = Trainer(_cfg(tmp_path, default_model, **{"trainer.resume": str(tmp_path / "ck")}))
    try:
        assert resumed.step_idx == 1
        assert "passing over a bad checkpoint" in capsys.readouterr().out
    finally:
        resumed.close()
