"""`rollout.dtype: bfloat16` with a float32 learner, end to end (Ray + transformers engine + DeepSpeed):
the engine holds bf16 weights, a sync rounds the learner's fp32 weights into them, and the
engine-vs-learner gap shows in rollout/logprob_diff (small, not zero)."""

from __future__ import annotations

import pytest
import ray
import torch

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e


def _engine_param(worker, name: str) -> torch.Tensor:
    return ray.get(worker.__ray_call__.remote(lambda self: self.engine.params[name].detach().clone()))


def _learner_param(learner, name: str) -> torch.Tensor:
    return ray.get(learner.__ray_call__.remote(
        lambda self: dict(self.engine.module.named_parameters())[name].detach().clone()))


def test_bf16_engine_with_fp32_learner(tmp_path, ray_session, default_model):
    cfg = load(None, {
        "model.path": default_model, "rollout.engine": "transformers", "rollout.dtype": "bfloat16",
        "rollout.prompts_per_step": 6, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.lr": 1e-3, "learner.micro_batch_size": 24, "algorithm.preset": "dr_grpo",
        "trainer.steps": 2, "trainer.output_dir": str(tmp_path), "trainer.run_name": "bf16",
        "logging.wandb": False, "data.n_train": 100, "data.n_test": 8,
    })
    trainer = Trainer(cfg)
    try:
        name = "model.layers.0.mlp.up_proj.weight"
        m = trainer.step()
        engine_w = _engine_param(trainer.actors.workers[0], name)
        learner_w = _learner_param(trainer.actors.learners[0], name)
        assert engine_w.dtype == torch.bfloat16 and learner_w.dtype == torch.float32
        assert torch.equal(engine_w, learner_w.to(torch.bfloat16)), "sync did not round the learner's weights in"
        assert 0.0 < m["rollout/logprob_diff"] < 0.1, m["rollout/logprob_diff"]
        # the learner casts to the engine's precision before sending: 2 bytes per weight, not 4
        numel = ray.get(trainer.actors.learners[0].__ray_call__.remote(
            lambda self: sum(p.numel() for _, p in self.engine.module.named_parameters(remove_duplicate=False))))
        assert m["sync/bytes"] == 2 * numel
    finally:
        trainer.close()
