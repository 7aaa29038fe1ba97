"""`trainer.schedule: one_step_off` end to end (Ray + transformers engine + DeepSpeed).

Step t+1's first generation round is submitted before step t's update, so it is made by the
weights of sync t-1 (one version stale); the batch trains with its behaviour log-probs as pi_old;
a checkpoint taken while a round is in flight resumes on exactly the prompts of that round.
"""

from __future__ import annotations

import pytest
import torch

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, **over):
    base = {
        "model.path": default_model, "rollout.engine": "transformers", "trainer.schedule": "one_step_off",
        "rollout.prompts_per_step": 6, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.lr": 1e-3, "learner.micro_batch_size": 24, "algorithm.preset": "dr_grpo",
        "trainer.steps": 10, "trainer.output_dir": str(tmp_path), "trainer.run_name": "osf",
        "trainer.seed": 0, "eval.n_samples": 1, "eval.max_prompts": 4, "logging.wandb": False,
        "data.n_train": 200, "data.n_test": 8,
    }
    base.update(over)
    return load(None, base)


def test_one_step_off_generates_with_previous_weights_and_resumes(tmp_path, ray_session, default_model):
    trainer = Trainer(_cfg(tmp_path, default_model))
    try:
        metrics = [trainer.step() for _ in range(3)]
        # step 1 is generated on the spot (version 0); step t>1 was submitted during step t-1's update
        assert [m["rollout/weight_version"] for m in metrics] == [0, 0, 1]
        assert [m["rollout/staleness"] for m in metrics] == [0, 1, 1]
        assert [m["weights/version"] for m in metrics] == [1, 2, 3]
        assert all(torch.isfinite(torch.tensor(m["actor/pg_loss"])) for m in metrics)

        # the in-flight round is stale: it trains against the policy that sampled it
        batch, m = trainer.collect_batch()
        assert m["rollout/staleness"] == 1 and int(batch.versions.max()) == trainer.version - 1
        assert batch.old_logp is not None and torch.equal(batch.old_logp, batch.sampling_logp)

        in_flight, = trainer.schedule.in_flight_prompt_keys()  # the schedule prefetched the next round
        assert len(in_flight) == 6
        trainer.save()  # with a round in flight
    finally:
        trainer.close()

    resumed = Trainer(_cfg(tmp_path, default_model, **{"trainer.resume": str(tmp_path / "osf")}))
    try:
        assert resumed.step_idx == 3 and resumed.version == 3
        batch, m = resumed.collect_batch()  # nothing in flight after a resume: made on the spot
        assert m["rollout/staleness"] == 0 and batch.old_logp is None
        assert list(dict.fromkeys(batch.prompt_keys)) == in_flight, "prompts of the in-flight round were lost"
    finally:
        resumed.close()
