"""A rollout worker that dies is replaced, synced to the current weights and its share of the round is
generated again; the run goes on and counts it in `faults/worker_restarts`. Real actors: the
worker is killed with `ray.kill`, as the OOM killer or a lost node would."""

from __future__ import annotations

import pytest
import ray
import torch

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("method", ["collective", "object_store"])
def test_a_killed_rollout_worker_is_replaced_and_the_run_goes_on(tmp_path, ray_session, default_model, method):
    cfg = load(None, {"model.path": default_model, "rollout.engine": "transformers", "rollout.num_workers": 2,
                      "rollout.prompts_per_step": 4, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
                      "trainer.steps": 3, "trainer.output_dir": str(tmp_path), "trainer.run_name": "faults",
                      "sync.method": method, "eval.max_prompts": 4, "logging.wandb": False,
                      "logging.report": False, "data.n_train": 100, "data.n_test": 8})
    trainer = Trainer(cfg)
    try:
        assert trainer.step()["faults/worker_restarts"] == 0
        dead = trainer.actors.workers[1]
        ray.kill(dead)
        m = trainer.step()  # generation finds worker 1 dead: replaced, its prompts generated again
        assert m["faults/worker_restarts"] == 1 and trainer.actors.workers[1] is not dead
        assert m["rollout/samples"] == 16  # the whole batch, none lost
        learner = trainer.actors.learners.call("policy_state")[0]
        for worker in trainer.actors.workers:
            engine = ray.get(worker.engine_weights.remote())
            assert all(torch.equal(t, learner[n]) for n, t in engine.items())
            assert ray.get(worker.get_version.remote()) == trainer.version == 2
        assert trainer.step()["faults/worker_restarts"] == 1
    finally:
        trainer.close()


def _learner_cfg(tmp_path, default_model, **over):
    return load(None, {"model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 4,
                       "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "trainer.steps": 3,
                       "trainer.output_dir": str(tmp_path), "trainer.run_name": "learner", "trainer.save_every": 1,
                       "eval.max_prompts": 4, "logging.wandb": False, "logging.report": False,
                       "data.n_train": 100, "data.n_test": 8, **over})


def test_a_killed_learner_restarts_every_actor_from_the_last_checkpoint(tmp_path, ray_session, default_model):
    """...with the algorithm the run was using: set on the live actors (GRPO's config swapped for Dr.GRPO,
    which has no KL term), the restarted learners run it too (with the config's GRPO their loss would log
    the KL term, and want reference log-probs the driver no longer computes)."""
    trainer = Trainer(_learner_cfg(tmp_path, default_model))
    try:
        trainer.set_algorithm({"preset": "dr_grpo"})
        trainer._run_step_or_recover()  # step 1, checkpointed
        saved = trainer.actors.learners.call("param_checksum")[0]
        old = list(trainer.actors.learners)
        ray.kill(old[0])
        trainer._run_step_or_recover()  # step 2 fails: every actor restarts from the checkpoint of step 1
        assert trainer.actor_restarts == 1 and trainer.step_idx == 1
        metrics = trainer.step()  # and the loop runs step 2 again, with Dr.GRPO on the fresh learners
        assert trainer.step_idx == 2 and "actor/kl_loss" not in metrics and "actor/pg_loss" in metrics
        trainer.save()
        assert trainer.actors.learners[0] is not old[0]
        assert trainer.actors.learners.call("param_checksum")[0] != saved  # step 2 trained on the restored weights
        ckpt = tmp_path / "learner" / "checkpoints" / "step_2"
        assert ckpt.exists()
        learner = trainer.actors.learners.call("policy_state")[0]
        engine = ray.get(trainer.actors.workers[0].engine_weights.remote())
        assert all(torch.equal(t, learner[n]) for n, t in engine.items())
    finally:
        trainer.close()


def test_past_max_restarts_the_run_stops_naming_the_resume_command(tmp_path, ray_session, default_model):
    trainer = Trainer(_learner_cfg(tmp_path, default_model, **{"trainer.max_restarts": 0}))
    try:
        trainer._run_step_or_recover()
        ray.kill(trainer.actors.learners[0])
        with pytest.raises(RuntimeError, match=r"died \(1 times, trainer.max_restarts=0\); resume .* --resume "):
            trainer._run_step_or_recover()
    finally:
        trainer.close()
