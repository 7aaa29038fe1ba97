"""Preference optimisation end to end (Ray + DeepSpeed, the embedded default model, few steps):
`launch/dpo.py --config configs/dpo_toy.yaml` learns the built-in pairs (held-out rewards/accuracies
above 0.5, margins up), prints its summary path last and exports a model transformers loads; resuming
from the mid-run checkpoint retraces the uninterrupted run's steps and weights; IPO and SimPO (no
reference actor) run with finite losses."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rltrain.config.dpo import load_dpo
from rltrain.dpo.losses import METRICS
from rltrain.dpo.train import DPOTrainer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STEPS = 8


def _launch(*args: str) -> tuple[str, list[str]]:
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "dpo.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return lines[-1], lines


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, default_model):
    out = tmp_path_factory.mktemp("dpo")
    summary_path, lines = _launch(
        "--config", "configs/dpo_toy.yaml", f"model_path={default_model}", "data.n_train=512", "data.n_test=64",
        f"train.steps={STEPS}", "train.pairs_per_step=16", "train.eval_every=4", "train.save_every=4",
        "learner.threads=1", "learner.lr=3e-4", "logging.wandb=false", f"train.output_dir={out}", "train.run_name=dpo")
    return json.loads(Path(summary_path).read_text()), lines


def test_dpo_learns_the_toy_pairs_and_exports_a_loadable_model(toy_run, default_model):
    summary, lines = toy_run
    assert lines[-1].endswith("summary.json") and sum("dpo step" in line for line in lines) == STEPS
    before, after = summary["eval_before"], summary["eval_after"]
    assert after["eval_rewards/accuracies"] > 0.5 and after["eval_rewards/accuracies"] > before["eval_rewards/accuracies"]
    assert before["eval_rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # the policy starts as the reference
    assert after["eval_rewards/margins"] > 0.1 and after["eval_loss"] < before["eval_loss"]
    steps = [m for m in _metrics(Path(summary["run_dir"])) if "loss" in m]
    assert [m["step"] for m in steps] == list(range(1, STEPS + 1))
    for m in steps:
        assert all(math.isfinite(m[k]) for k in (*METRICS, "grad_norm", "learning_rate", "timing_s/step")), m
    margins = [m["rewards/margins"] for m in steps]
    assert sum(margins[STEPS // 2:]) > sum(margins[:STEPS // 2]) + 0.1  # margins grow over training
    assert "eval_rewards/accuracies" in steps[3]  # held-out at step 4 (eval_every)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export, base = (AutoModelForCausalLM.from_pretrained(p) for p in (summary["model"], default_model))
    tok = AutoTokenizer.from_pretrained(summary["model"])
    ids = torch.tensor([tok("rev 1234?")["input_ids"]])
    assert torch.isfinite(export(ids).logits).all()
    assert not torch.equal(export.state_dict()["model.norm.weight"], base.state_dict()["model.norm.weight"])


def test_resume_from_the_mid_run_checkpoint_retraces_the_run(toy_run, ray_session, tmp_path):
    """In this process (launch/dpo.py --resume DIR loads DIR/config.yaml with train.resume=DIR, as here)."""
    summary, _ = toy_run
    src, dst = Path(summary["run_dir"]), tmp_path / "resumed"
    dst.mkdir()
    shutil.copy(src / "config.yaml", dst / "config.yaml")
    shutil.copytree(src / "checkpoints" / f"step_{STEPS // 2}", dst / "checkpoints" / f"step_{STEPS // 2}")
    trainer = DPOTrainer(load_dpo(str(dst / "config.yaml"), {"train.resume": str(dst)}))
    try:
        assert trainer.step_idx == STEPS // 2 and trainer.run_dir == dst
        trainer.run()
    finally:
        trainer.close()
    again = {m["step"]: m for m in _metrics(dst) if "loss" in m}
    first = {m["step"]: m for m in _metrics(src) if "loss" in m}
    assert sorted(again) == list(range(STEPS // 2 + 1, STEPS + 1))  # the same pairs in the same order, same optimizer
    for step, m in again.items():
        for key in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
            assert m[key] == pytest.approx(first[step][key], rel=1e-4, abs=1e-6), (step, key)
    resumed = json.loads((dst / "summary.json").read_text())
    assert resumed["eval_after"]["eval_loss"] == pytest.approx(summary["eval_after"]["eval_loss"], rel=1e-4)
    from safetensors.torch import load_file

    a, b = (load_file(str(Path(s["model"]) / "model.safetensors")) for s in (summary, resumed))
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


@pytest.mark.parametrize("loss,beta", [("ipo", 0.5), ("simpo", 2.0)])
def test_ipo_and_simpo_take_steps_with_finite_losses(ray_session, default_model, tmp_path, loss, beta):
    cfg = load_dpo("configs/dpo_toy.yaml", {
        "model_path": default_model, "dpo.loss": loss, "dpo.beta": beta, "data.n_train": 64, "data.n_test": 16,
        "train.steps": 2, "train.pairs_per_step": 8, "train.eval_every": 0, "learner.threads": 1, "learner.lr": 3e-4,
        "logging.wandb": False, "train.output_dir": str(tmp_path), "train.run_name": loss})
    trainer = DPOTrainer(cfg)
    try:
        assert (trainer.reference is None) == (loss == "simpo")  # SimPO starts no reference
        summary = trainer.run()
    finally:
        trainer.close()
    steps = [m for m in _metrics(Path(summary["run_dir"])) if "loss" in m]
    assert len(steps) == 2 and all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in steps)
    assert math.isfinite(summary["eval_after"]["eval_loss"])
    if loss == "ipo":  # policy = reference: h = 0, so the first loss is (1 / (2 beta))^2 = 1
        assert steps[0]["loss"] == pytest.approx(1.0, abs=1e-3)
    else:
        assert not trainer.ref_train.isfinite().any()  # nothing was computed for a reference
