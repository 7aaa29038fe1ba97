"""Bad numbers: a non-finite loss or gradient skips the optimizer step (weights and optimizer state
untouched, `faults/skipped_steps`), and more than `trainer.max_skipped_steps` in a row stop the run
with a clear error. The loss is made NaN by a user objective given by import path. The same run has a
user reward that scores above the range it declares: each such score is dropped (here replaced by its
`fallback`, 0), logged, and counted in `reward/out_of_range`."""

from __future__ import annotations

import logging

import pytest
import ray

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e


def test_nan_loss_skips_steps_then_stops(tmp_path, ray_session, default_model, caplog):
    caplog.set_level(logging.WARNING, logger="rewards")
    overconfident = {"name": "rltrain_user_parts:overconfident_reward", "params": {"fallback": 0.0}}
    cfg = load(None, {"model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 4,
                      "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "trainer.steps": 5,
                      "reward.functions": [{"name": "exact_match"}, overconfident],
                      "trainer.output_dir": str(tmp_path), "trainer.run_name": "nan", "trainer.max_skipped_steps": 2,
                      "algorithm.objective.name": "rltrain_user_parts:NaNObjective", "eval.max_prompts": 4,
                      "logging.wandb": False, "logging.report": False, "data.n_train": 100, "data.n_test": 8})
    trainer = Trainer(cfg)
    try:
        before = ray.get(trainer.actors.learners[0].param_checksum.remote())
        for k in (1, 2):
            m = trainer.step()
            assert m["faults/skipped_steps"] == k
            assert m["reward/out_of_range"] == 16.0  # 4 prompts x 4 samples, each scored 2.0 in [0, 1]
            assert m["reward/errors"] == 0.0 and m["reward/untrusted_tests"] == 0.0
            assert m["reward/overconfident_reward_mean"] == 0.0  # the fallback, not 2.0
            assert ray.get(trainer.actors.learners[0].param_checksum.remote()) == before  # nothing applied
        with pytest.raises(FloatingPointError, match=r"3 steps in a row had non-finite gradients "
                                                     r"\(trainer.max_skipped_steps=2\)"):
            trainer.step()
        assert ray.get(trainer.actors.learners[0].param_checksum.remote()) == before
        assert "reward 'overconfident_reward': sample 0 scored 2, outside its range [0, 1]; scored 0.0" in caplog.text
    finally:
        trainer.close()


def test_launch_stops_with_one_line_when_gradients_stay_non_finite(tmp_path, default_model):
    """Through launch/grpo.py as a user runs it: past `trainer.max_skipped_steps` the run ends with exit 1 and
    one line on stderr naming why and where the last checkpoint is, not a traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "tests" / "e2e"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "launch/grpo.py", f"model.path={default_model}", "rollout.engine=transformers",
         "rollout.prompts_per_step=2", "rollout.n_samples=4", "rollout.max_new_tokens=4", "trainer.steps=3",
         "trainer.max_skipped_steps=0", "algorithm.objective.name=rltrain_user_parts:NaNObjective",
         "eval.max_prompts=4", "logging.wandb=false", "logging.report=false", "data.n_train=50", "data.n_test=4",
         f"trainer.output_dir={tmp_path}", "trainer.run_name=nan"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    stopped = [line for line in run.stderr.splitlines() if line.startswith("stopped: ")]
    assert stopped == [f"stopped: 1 steps in a row had non-finite gradients (trainer.max_skipped_steps=0); "
                       f"stopping. The last complete checkpoint is under {tmp_path / 'nan' / 'checkpoints'}"]
