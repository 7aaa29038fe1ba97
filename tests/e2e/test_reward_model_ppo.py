"""Alignment with a learned reward, end to end: a reward model trained on the built-in preference
pairs (Bradley-Terry, DeepSpeed learner code) scores chosen above rejected on held-out pairs and
exports a directory the `reward_model` reward loads; PPO with a critic (GAE, clipped value loss)
trains against it, and both the policy's and the critic's weights change."""

from __future__ import annotations

import math

import pytest
import ray

import rewards
from rltrain.config import load
from rltrain.config.rm import load_rm
from rltrain.driver.trainer import Trainer
from rltrain.rm.preferences import builtin_pairs
from rltrain.rm.train import RewardModelTrainer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, ray_session, default_model):
    out = tmp_path_factory.mktemp("rm")
    cfg = load_rm(None, {"model_path": default_model, "data.n_train": 1000, "data.n_test": 90, "train.steps": 200,
                         "train.pairs_per_step": 32, "train.eval_every": 0, "train.output_dir": str(out),
                         "train.run_name": "rm", "learner.lr": 5e-4})
    trainer = RewardModelTrainer(cfg)
    try:
        summary = trainer.run()
    finally:
        trainer.close()  # its ranks give their CPUs back before the PPO run places its actors
    return summary


def test_reward_model_learns_the_builtin_preferences(trained_rm):
    before, after = trained_rm["before"], trained_rm["after"]
    assert before["rm/margin_mean"] == pytest.approx(0.0, abs=0.5)  # a fresh head scores pairs alike
    assert after["rm/accuracy"] >= 0.75 and after["rm/accuracy"] > before["rm/accuracy"] + 0.2, after
    assert after["rm/margin_mean"] > 0.5
    # the export loads as the `reward_model` reward and ranks held-out pairs the same way
    score = rewards.load("reward_model", model_path=trained_rm["model"])
    pairs = builtin_pairs("rev4", "test", 30, seed=1)
    chosen = score([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = score([p.prompt for p in pairs], [p.rejected for p in pairs])
    assert sum(c > r for c, r in zip(chosen, rejected)) / len(pairs) >= 0.7


def test_ppo_with_a_critic_against_the_learned_reward_model(tmp_path, trained_rm, default_model):
    cfg = load(None, {
        "model.path": default_model, "rollout.engine": "transformers", "algorithm.preset": "ppo",
        "rollout.prompts_per_step": 4, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.lr": 3e-3, "learner.micro_batch_size": 8, "critic.lr": 1e-3, "critic.micro_batch_size": 8,
        "reward.functions": [{"name": "reward_model", "params": {"model_path": trained_rm["model"]}}],
        "trainer.steps": 3, "trainer.output_dir": str(tmp_path), "trainer.run_name": "ppo",
        "eval.n_samples": 2, "eval.max_prompts": 4, "eval.reward": {"functions": [{"name": "exact_match"}]},
        "logging.wandb": False, "logging.report": False, "data.n_train": 100, "data.n_test": 8,
    })
    trainer = Trainer(cfg)
    try:
        assert trainer.actors.critic is not None and trainer.actors.reference is not None
        policy0 = trainer.actors.learners.call("param_checksum")[0]
        critic0 = trainer.actors.critic.call("param_checksum")[0]
        seen = [trainer.step() for _ in range(2)]
        for m in seen:
            for key in ("critic/value_loss", "critic/explained_variance", "critic/values_mean", "critic/clipfrac",
                        "critic/grad_norm", "critic/kl_in_reward", "actor/grad_norm"):
                assert key in m and math.isfinite(m[key]), (key, m.get(key))
        assert seen[0]["critic/values_mean"] == pytest.approx(0.0, abs=1e-6)  # the zero-initialised head
        assert seen[1]["critic/values_mean"] != pytest.approx(0.0, abs=1e-6)  # the critic learned from step 1
        assert trainer.actors.learners.call("param_checksum")[0] != policy0
        assert trainer.actors.critic.call("param_checksum")[0] != critic0
        ckpt = trainer.save()
        assert (ckpt / "critic").is_dir() and (ckpt / "learner").is_dir()
    finally:
        trainer.close()
