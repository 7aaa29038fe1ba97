"""Weight sync end to end: the collective path (gloo broadcast from learner rank 0 to the rollout
workers), colocated placement (the engine in learner rank 0's process, adopting its tensors), and a
rollout worker replaced mid-run re-joining the sync group. Real actors, engines and DeepSpeed."""

from __future__ import annotations

import pytest
import ray
import torch

from rltrain.config import ConfigError, load
from rltrain.driver.trainer import Trainer
from rltrain.engines.base import SamplingConfig

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, **over):
    base = {
        "model.path": default_model, "rollout.engine": "transformers",
        "rollout.prompts_per_step": 4, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.lr": 3e-3, "learner.micro_batch_size": 16,
        "trainer.steps": 2, "trainer.output_dir": str(tmp_path), "trainer.run_name": "run",
        "eval.n_samples": 2, "eval.max_prompts": 4, "logging.wandb": False, "logging.report": False,
        "data.n_train": 100, "data.n_test": 8, "algorithm.regularizer.coef": 0.0,
    }
    base.update(over)
    return load(None, base)


def _assert_engines_hold_learner_weights(trainer: Trainer, dtype: torch.dtype = torch.float32) -> None:
    learner = trainer.actors.learners.call("policy_state")[0]
    for i, worker in enumerate(trainer.actors.workers):
        engine = ray.get(worker.engine_weights.remote())
        assert set(engine) <= set(learner), set(engine) - set(learner)
        for name, t in engine.items():
            assert t.dtype == dtype, name
            assert torch.equal(t, learner[name].to(dtype)), f"worker {i}: {name} differs from the learner's"
        assert ray.get(worker.get_version.remote()) == trainer.version


def _greedy_logprobs(trainer: Trainer) -> list[float]:
    prompt = trainer.rollout.prompt_ids(trainer.files.test_rows[0])
    out = ray.get(trainer.actors.workers[0].generate.remote([prompt], SamplingConfig(n=1, max_new_tokens=4, greedy=True)))
    return out["samples"][0].logprobs


# two workers on one collective group: test_replaced_worker_rejoins_the_sync_group; two object-store
# workers: tests/e2e/test_worker_faults.py (both check every engine bit-equal after a sync)
PLANNED = {"collective": "gloo_broadcast", "object_store": "object_store"}  # sync.method -> the plan's on CPU


@pytest.mark.parametrize("method, workers, zero, ranks", [("collective", 1, 0, 1), ("collective", 1, 3, 2),
                                                           ("object_store", 1, 0, 1)])
def test_sync_leaves_engines_bit_equal_to_the_learner(tmp_path, ray_session, default_model, method, workers, zero, ranks):
    trainer = Trainer(_cfg(tmp_path, default_model, **{"sync.method": method, "rollout.num_workers": workers,
                                                       "learner.zero_stage": zero, "learner.num_ranks": ranks}))
    try:
        assert trainer.sync.methods == PLANNED[method]
        metrics = trainer.step()
        assert metrics["sync/method"] == PLANNED[method] and metrics["sync/bytes"] > 0 and metrics["sync/gb_per_s"] > 0
        _assert_engines_hold_learner_weights(trainer)
        trainer.step()
        _assert_engines_hold_learner_weights(trainer)
        assert trainer.version == 2
    finally:
        trainer.close()


def test_collective_sync_to_bf16_engines_rounds_to_their_dtype(tmp_path, ray_session, default_model):
    trainer = Trainer(_cfg(tmp_path, default_model, **{"sync.method": "collective", "rollout.dtype": "bfloat16"}))
    try:
        metrics = trainer.step()
        _assert_engines_hold_learner_weights(trainer, torch.bfloat16)
        n_params = sum(t.numel() for t in trainer.actors.learners.call("policy_state")[0].values())
        assert metrics["sync/bytes"] == 2 * n_params  # bf16 on the wire: 2 bytes a weight
    finally:
        trainer.close()


def test_replaced_worker_rejoins_the_sync_group(tmp_path, ray_session, default_model):
    trainer = Trainer(_cfg(tmp_path, default_model, **{"sync.method": "collective", "rollout.num_workers": 2,
                                                       "trainer.steps": 3}))
    try:
        metrics = trainer.step()
        assert metrics["sync/method"] == "gloo_broadcast" and metrics["sync/bytes"] > 0
        _assert_engines_hold_learner_weights(trainer)  # one sync reaches both workers of the group
        old = trainer.actors.workers[1]
        assert ray.get(old.get_version.remote()) == 1
        ray.kill(old)  # the worker dies mid-run
        trainer.replace_worker(1)
        assert trainer.actors.workers[1] is not old
        _assert_engines_hold_learner_weights(trainer)  # the fresh engine starts on the current weights and version
        trainer.step()  # a sync over the fresh group reaches both workers
        _assert_engines_hold_learner_weights(trainer)
    finally:
        trainer.close()


@pytest.mark.parametrize("engine_dtype, shared", [("auto", 1.0), ("bfloat16", 0.0)])
def test_colocated_engine_adopts_the_learner_weights(tmp_path, ray_session, default_model, engine_dtype, shared):
    trainer = Trainer(_cfg(tmp_path, default_model, placement="colocated", **{"rollout.dtype": engine_dtype}))
    try:
        [lead] = trainer.actors.learners
        assert list(trainer.actors.workers) == [lead]  # the rollout group is learner rank 0 itself
        assert ray.get(lead.engine_shares_storage.remote()) == shared
        before = _greedy_logprobs(trainer)
        for _ in range(2):
            metrics = trainer.step()
            assert metrics["sync/method"] == "in_process"
            assert metrics["sync/buckets"] == 0 and (metrics["sync/bytes"] == 0) == bool(shared)
            after = _greedy_logprobs(trainer)
            assert after != before  # the engine generates with the updated weights
            before = after
        dtype = torch.float32 if engine_dtype == "auto" else torch.bfloat16
        _assert_engines_hold_learner_weights(trainer, dtype)
        if not shared:  # a bf16 engine beside a float32 learner copies every weight, in its own dtype
            engine = ray.get(lead.engine_weights.remote())
            assert metrics["sync/bytes"] == 2 * sum(t.numel() for t in engine.values())
    finally:
        trainer.close()


def test_auto_sync_method_is_the_plans_choice_for_the_device_kind(tmp_path, default_model):
    from rltrain.workers.planner import Cluster, plan

    cfg = _cfg(tmp_path, default_model)
    assert cfg.sync.method == "auto"
    methods = lambda c, gpus: [e.method for e in plan(c, Cluster(gpus, 8), False, False).weight_sync]  # noqa: E731
    assert (methods(cfg, 0), methods(cfg, 2), methods(cfg, 1)) == (["gloo_broadcast"], ["nccl_broadcast"], ["cuda_ipc"])
    assert methods(_cfg(tmp_path, default_model, placement="colocated"), 0) == ["in_process"]


def test_colocated_refuses_overlapping_schedules_and_many_engines(tmp_path, default_model):
    with pytest.raises(ConfigError, match="rollout.num_workers must be 1"):
        _cfg(tmp_path, default_model, placement="colocated", **{"rollout.num_workers": 2})
    with pytest.raises(ConfigError, match="overlaps them"):  # when the config loads, before anything starts
        _cfg(tmp_path, default_model, placement="colocated", **{"trainer.schedule": "async", "trainer.max_staleness": 1})


def test_sync_verify_catches_a_stale_engine_and_names_it(tmp_path, ray_session, default_model):
    """sync.verify compares a checksum of what each engine serves with what the learners sent: a sync that
    did not apply (here: engine 1 ignores the buckets it is given) stops the run naming that engine."""
    from rltrain.workers.sync_strategies import StaleEngineError

    trainer = Trainer(_cfg(tmp_path, default_model, **{"sync.verify": True, "rollout.num_workers": 2,
                                                       "rollout.dtype": "bfloat16", "sync.timeout_s": 60}))
    try:
        metrics = trainer.step()
        assert metrics["sync/verified_engines"] == 2.0
        stale = trainer.actors.workers[1]
        ignore = lambda named: [None for _ in named]  # noqa: E731 - takes the bucket (a broadcast), applies nothing
        ray.get(stale.__ray_call__.remote(lambda self: setattr(self.engine, "load_weights", ignore)))
        with pytest.raises(StaleEngineError, match=r"^rollout/1 serves weights other than the learners sent"):
            trainer.step()
    finally:
        trainer.close()
