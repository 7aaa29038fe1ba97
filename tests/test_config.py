"""The run config fails at start-up, naming the key, for unknown keys and bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rltrain.config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_overrides_in_all_forms(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("learner:\n  lr: 2.0e-4\nalgorithm:\n  preset: dapo+forking\n")
    cfg = load(str(yml), ["--learner.lr=5e-5", "--rollout.n_samples", "4", "trainer.steps=3"])
    assert cfg.learner.lr == 5e-5 and cfg.rollout.n_samples == 4 and cfg.trainer.steps == 3
    assert cfg.algorithm.spec() == {"preset": "dapo+forking"}


@pytest.mark.parametrize("override,needle", [
    ("trainer.stepz=3", "trainer.stepz"),
    ("learner.lr=fast", "learner.lr"),
    ("learner.zero_stage=4", "learner.zero_stage"),
    ("rollout.engine=tgi", "rollout.engine"),
    ("rollout.temperature=0", "rollout.temperature"),
    ("algorithm.preset=grpoo", "grpoo"),
    ("algorithm.objective.hgih=1.3", "algorithm.objective.hgih"),
])
def test_bad_config_names_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load(None, [override])
    assert needle in str(err.value)


def test_launch_rejects_bad_key_before_starting_anything():
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), "--learner.lrr=1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "learner.lrr" in proc.stderr and "did you mean 'learner.lr'" in proc.stderr
