"""Sweeps end to end: `launch/sweep.py` runs trials on Ray Tune, each a real rltrain run (Ray actors,
the transformers engine, DeepSpeed), and writes the table, the best config and the report pictures;
a W&B agent's command line runs `launch/grpo.py key=value ...` as is."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rltrain.config import load
from rltrain.driver.reporting.report import png_text

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PANELS = ["training reward", "eval pass@k", "entropy", "response length", "clip fractions", "step time by phase"]


def _wandb_records(path: Path):
    """The protobuf records of a W&B transaction log (.wandb: a 7-byte header, then LevelDB-style
    32 KiB blocks of chunks: crc32, length (2 bytes), type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, parts = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def _wandb_run(run_dir: Path):
    [log] = list((run_dir / "wandb").glob("offline-run-*/*.wandb"))
    return next(r.run for r in _wandb_records(log) if r.WhichOneof("record_type") == "run")


def _sweep(args: list[str], timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "WANDB_MODE": "offline", "RAY_DEDUP_LOGS": "0"}
    out = subprocess.run([sys.executable, "launch/sweep.py", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    path = Path(out.stdout.strip().splitlines()[-1])  # the last line is the summary's path
    return out, json.loads(path.read_text())


def test_toy_lr_sweep_trials_one_wandb_group_table_best_config_reports_and_a_failing_trial(tmp_path):
    """configs/sweeps/toy_lr.yaml as shipped, its grid crossed with a model path that does not exist:
    the two real trials complete, the two failing ones are reported and do not stop the sweep."""
    sweep = yaml.safe_load((ROOT / "configs/sweeps/toy_lr.yaml").read_text())
    bad_model = str(tmp_path / "no-such-model")
    sweep["base"] = str(ROOT / sweep["base"])
    sweep["parameters"]["model.path"] = {"values": [None, bad_model]}
    path = tmp_path / "toy_lr.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out, summary = _sweep(["--config", str(path), f"output_dir={tmp_path}", "name=lr"])
    trials = [t for t in summary["trials"] if t["overrides"]["model.path"] is None]
    failed = [t for t in summary["trials"] if t["overrides"]["model.path"] == bad_model]
    assert [t["status"] for t in trials] == ["done", "done"] and len(failed) == 2
    assert all(t["status"].startswith("error: ") and "ConfigError: model.path=" in t["status"] and t["best"] is None
               for t in failed)
    assert sorted(t["overrides"]["learner.lr"] for t in trials) == [1e-4, 3e-4]
    assert all(t["steps"] == 2 and 0 <= t["best"] <= 1 and t["before"] is not None for t in trials)
    # the table, printed and written
    table = (tmp_path / "lr" / "summary.md").read_text()
    assert table.count("| error: ") == 2
    for t in trials:
        assert f"| {t['trial']} | learner.lr={t['overrides']['learner.lr']:g} model.path=None | done |" in table
        assert f"| {t['trial']} |" in out.stdout
    # each trial is a full run with its own W&B offline run, all in the sweep's group
    runs = [_wandb_run(Path(t["run_dir"])) for t in trials]
    assert {r.run_group for r in runs} == {"lr"} and len({r.run_id for r in runs}) == 2
    for t in trials:
        cfg = yaml.safe_load((Path(t["run_dir"]) / "config.yaml").read_text())
        assert cfg["learner"]["lr"] == t["overrides"]["learner.lr"] and cfg["trainer"]["steps"] == 2
        # every run draws its own report.png (the run report's end-to-end check)
        text = png_text(Path(t["run_dir"]) / "report.png")
        panels = json.loads(text["rltrain-panels"])
        assert [p["title"] for p in panels] == PANELS
        assert all(p["curves"] > 0 for p in panels if p["title"] != "clip fractions"), panels
    # the best trial's config runs as is
    best = next(t for t in trials if t["trial"] == summary["best_trial"])
    assert best["best"] == max(t["best"] for t in trials)
    cfg = load(summary["best_config"])
    assert cfg.learner.lr == best["overrides"]["learner.lr"] and cfg.trainer.run_name is None
    # the overlay of the trials that ran
    overlay = png_text(Path(summary["report"]))
    assert set(json.loads(overlay["rltrain-runs"])) == {t["trial"] for t in trials}


def test_wandb_agent_command_line_runs(tmp_path):
    """What `wandb agent` runs for one point of configs/sweeps/grpo_lr.yaml: its `command:` with
    ${env} ${program} and ${args_no_hyphens} filled in (plus two more parameters of the same form,
    which a user's sweep file could hold, to keep the run short)."""
    spec = yaml.safe_load((ROOT / "configs/sweeps/grpo_lr.yaml").read_text())
    point = {k: v["values"][0] for k, v in spec["parameters"].items()}
    point.update({"trainer.steps": 1, "eval.max_prompts": 8, "trainer.output_dir": str(tmp_path)})
    fill = {"${env}": ["/usr/bin/env"], "${interpreter}": [sys.executable], "${program}": [spec["program"]],
            "${args_no_hyphens}": [f"{k}={v}" for k, v in point.items()]}
    argv = [a for token in spec["command"] for a in fill.get(token, [token])]
    argv = [sys.executable if a == "python" else a for a in argv]
    assert argv[:2] == ["/usr/bin/env", sys.executable] and f"learner.lr={point['learner.lr']}" in argv
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(Path(out.stdout.strip().splitlines()[-1]).read_text())
    run_cfg = yaml.safe_load((Path(summary["run_dir"]) / "config.yaml").read_text())
    assert run_cfg["learner"]["lr"] == point["learner.lr"] and run_cfg["algorithm"]["preset"] == point["algorithm.preset"]
    assert summary["steps"] == 1
