"""Exact resume: stopped after step k and resumed, a run on the transformers engine makes the same
per-step rewards and losses and ends on the same weights as the uninterrupted run; evaluations in
between do not change the training trajectory (they sample with their own seed). The run draws its
prompts with CurES (posteriors, draw order and allocation in the checkpoint); the uniform sampler's
cursor is the simpler state (tests/test_data.py)."""

from __future__ import annotations

import pytest
import ray

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e
KEYS = ("rollout/reward_mean", "actor/pg_loss", "actor/entropy", "rollout/response_length_mean", "cures/p_mean",
        "cures/alloc_std", "data/signal_frac", "data/samples_total")


def _cfg(tmp_path, default_model, name, **over):
    base = {"model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 8,
            "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "learner.lr": 3e-3, "learner.micro_batch_size": 16,
            "trainer.steps": 4, "trainer.output_dir": str(tmp_path), "trainer.run_name": name, "trainer.seed": 3,
            "eval.n_samples": 2, "eval.max_prompts": 8, "logging.wandb": False, "logging.report": False,
            "data.n_train": 24, "data.n_test": 16, "data.sampler": "cures"}  # 24 prompts: CurES sees them again
    base.update(over)
    return load(None, base)


def _step(trainer: Trainer) -> dict[str, float]:
    m = trainer.step()
    return {k: m[k] for k in KEYS}


def _checksum(trainer: Trainer) -> float:
    return ray.get(trainer.actors.learners[0].param_checksum.remote())


def test_stop_after_step_2_and_resume_gives_the_uninterrupted_run(tmp_path, ray_session, default_model):
    full = Trainer(_cfg(tmp_path, default_model, "full"))
    try:
        straight = []
        for step in range(4):
            straight.append(_step(full))
            if step in (0, 2):
                full.evaluate()  # evaluations in between leave the trajectory alone
        final = _checksum(full)
        assert any(m["cures/alloc_std"] > 0 for m in straight)  # prompts seen before got unequal budgets
    finally:
        full.close()

    first = Trainer(_cfg(tmp_path, default_model, "part"))
    try:
        parts = [_step(first) for _ in range(2)]
        first.save()
    finally:
        first.close()
    resumed = Trainer(_cfg(tmp_path, default_model, "part", **{"trainer.resume": str(tmp_path / "part")}))
    try:
        assert resumed.step_idx == 2
        parts += [_step(resumed) for _ in range(2)]
        assert parts == straight  # every step's reward, loss, entropy and length, exactly
        assert _checksum(resumed) == final
    finally:
        resumed.close()
