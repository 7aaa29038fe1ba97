"""`trainer.schedule: async` with `trainer.max_staleness: k` end to end (Ray + transformers engine + DeepSpeed).

k = 0 makes exactly the synchronous run's updates; k = 2 keeps two rounds in flight, so from step 3 on
every batch was made by weights two versions older than the learner's, trains against its behaviour
log-probs, and a checkpoint taken with both rounds in flight resumes on the oldest round's prompts.
"""

from __future__ import annotations

import pytest
import ray
import torch

from rltrain.config import load
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e

KEYS = ("rollout/reward_mean", "rollout/response_length_mean", "actor/pg_loss", "actor/grad_norm")


def _cfg(tmp_path, default_model, name, **over):
    base = {
        "model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 6,
        "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "learner.lr": 1e-3, "learner.micro_batch_size": 24,
        "algorithm.preset": "dr_grpo", "trainer.steps": 4, "trainer.output_dir": str(tmp_path),
        "trainer.run_name": name, "trainer.seed": 0, "eval.n_samples": 1, "eval.max_prompts": 4,
        "logging.wandb": False, "data.n_train": 200, "data.n_test": 8,
    }
    base.update(over)
    return load(None, base)


def _run(cfg, steps: int) -> tuple[list[dict], float]:
    trainer = Trainer(cfg)
    try:
        metrics = [trainer.step() for _ in range(steps)]
        return metrics, ray.get(trainer.actors.learners[0].param_checksum.remote())
    finally:
        trainer.close()


def test_async_with_zero_staleness_is_the_synchronous_run(tmp_path, ray_session, default_model):
    sync, w_sync = _run(_cfg(tmp_path, default_model, "sync"), 3)
    k0, w_k0 = _run(_cfg(tmp_path, default_model, "k0", **{"trainer.schedule": "async",
                                                              "trainer.max_staleness": 0}), 3)
    for a, b in zip(sync, k0):
        assert [a[k] for k in KEYS] == [b[k] for k in KEYS]
        assert b["rollout/staleness_max"] == 0
    assert w_sync == w_k0


def test_async_two_versions_ahead_trains_stale_batches_and_resumes(tmp_path, ray_session, default_model):
    # decoupled: pi_old = the learner's, on stale rows too; CurES draws the prompts (its state resumes with the
    # in-flight rounds' prompts)
    tis = {"algorithm.correction": {"name": "tis", "cap": 2.0}, "data.sampler": "cures"}
    cfg = _cfg(tmp_path, default_model, "k2", **{"trainer.schedule": "async", "trainer.max_staleness": 2,
                                                   "trainer.steps": 10, **tis})
    trainer = Trainer(cfg)
    try:
        metrics = [trainer.step() for _ in range(4)]
        assert [m["rollout/weight_version"] for m in metrics] == [0, 0, 0, 1]
        assert [m["rollout/staleness_max"] for m in metrics] == [0, 1, 2, 2]
        assert all(torch.isfinite(torch.tensor(m["actor/pg_loss"])) for m in metrics)
        # the weights correct the lag: pi_learner(now) / pi_engine(then) is not 1 on stale batches
        assert all(m["rollout/tis_weight_mean"] != 1.0 for m in metrics[1:])
        batch, m = trainer.collect_batch()  # step 5's batch, two versions stale
        assert m["rollout/staleness_mean"] == 2 and torch.equal(batch.old_logp, batch.sampling_logp)
        trainer.compute_logprobs(batch)  # pi_old becomes the learner's, the behaviour stays in sampling_logp
        assert torch.equal(batch.old_logp, batch.prox_logp) and not torch.equal(batch.old_logp, batch.sampling_logp)
        in_flight = trainer.schedule.in_flight_prompt_keys()
        assert len(in_flight) == 2
        trainer.save()  # two rounds in flight
    finally:
        trainer.close()

    resumed = Trainer(_cfg(tmp_path, default_model, "k2", **{"trainer.schedule": "async", "trainer.max_staleness": 2,
                                                              "trainer.steps": 10, "trainer.resume": str(tmp_path / "k2"),
                                                              **tis}))
    try:
        batch, m = resumed.collect_batch()  # nothing in flight after a resume: made on the spot
        assert m["rollout/staleness_max"] == 0
        assert list(dict.fromkeys(batch.prompt_keys)) == in_flight[0], "prompts of the oldest in-flight round lost"
        assert resumed.schedule.in_flight_prompt_keys()[0] == in_flight[1]  # and the next round is the next one
    finally:
        resumed.close()
