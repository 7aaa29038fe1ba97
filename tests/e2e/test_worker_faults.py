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
