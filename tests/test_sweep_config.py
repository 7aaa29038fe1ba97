"""Sweep files: validated at start-up, every trial's run config included, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rltrain.config import ConfigError
from rltrain.config.sweep import load_sweep, trial_overrides

ROOT = Path(__file__).resolve().parent.parent


def _sweep(tmp_path: Path, **body) -> str:
    data = {"base": str(ROOT / "configs/grpo_toy.yaml"), "parameters": {"learner.lr": {"values": [1e-4, 3e-4]}}}
    data.update(body)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_shipped_sweep_files_load():
    for name in ("toy_lr", "toy_lr_asha"):
        sweep = load_sweep(str(ROOT / f"configs/sweeps/{name}.yaml"))
        assert sweep.parameters
    asha = load_sweep(str(ROOT / "configs/sweeps/toy_lr_asha.yaml"))
    assert asha.scheduler.name == "asha" and asha.search == "random"


def test_validation_points_are_the_grid_or_the_distribution_ends(tmp_path):
    sweep = load_sweep(_sweep(tmp_path, search="random", parameters={
        "learner.lr": {"distribution": "log_uniform", "min": 1e-5, "max": 1e-3},
        "rollout.n_samples": {"distribution": "int_uniform", "min": 4, "max": 8},
        "algorithm.preset": {"values": ["grpo", "dr_grpo"]}}))
    points = sweep.validation_points()
    assert len(points) == 8
    assert {p["learner.lr"] for p in points} == {1e-5, 1e-3}
    assert {p["rollout.n_samples"] for p in points} == {4, 8}
    assert trial_overrides(sweep, points[0])["algorithm.preset"] in ("grpo", "dr_grpo")


def test_a_bad_trial_value_names_the_trial_and_the_run_key(tmp_path):
    with pytest.raises(ConfigError, match=r"the trial with learner\.lrr=0\.1: .*learner\.lrr: unknown key"):
        load_sweep(_sweep(tmp_path, parameters={"learner.lrr": {"values": [0.1]}}))
    with pytest.raises(ConfigError, match=r"the trial with learner\.lr=-1.*learner\.lr"):
        load_sweep(_sweep(tmp_path, parameters={"learner.lr": {"values": [1e-4, -1]}}))


@pytest.mark.parametrize("body, message", [
    ({"search": "grid", "parameters": {"learner.lr": {"distribution": "uniform", "min": 0, "max": 1}}},
     "search: grid needs `values`"),
    ({"parameters": {"learner.lr": {"distribution": "log_uniform", "min": 0, "max": 1}}, "search": "random"},
     "log_uniform needs min > 0"),
    ({"parameters": {"learner.lr": {"values": [1e-4], "distribution": "uniform"}}}, "parameters.learner.lr: give either `values"),
    ({"overrides": {"learner.lr": 1e-4}}, "both searched"),
    ({"parameters": {}}, "nothing to search"),
    ({"scheduler": {"name": "hyperband"}}, "scheduler.name"),
    ({"mxa_concurrent": 2}, "mxa_concurrent: unknown key"),
])
def test_bad_sweep_files_fail_before_anything_runs(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_sweep(tmp_path, **body))


def test_sweep_keys_can_be_overridden_on_the_command_line(tmp_path):
    sweep = load_sweep(_sweep(tmp_path), ["name=lr2", "max_concurrent=1", "resources_per_trial.cpus=0.5"])
    assert (sweep.name, sweep.max_concurrent, sweep.resources_per_trial.cpus) == ("lr2", 1, 0.5)
