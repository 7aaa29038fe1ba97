"""End to end through Ray, a real rollout engine and DeepSpeed learners, with the tiny default model.

Each test runs real steps of the trainer: generate -> reward -> log-probs -> update -> sync.
"""

from __future__ import annotations

import json

import pytest
import ray
import torch

from rltrain.config import load
from rltrain.engines.base import SamplingConfig
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e

PROBE = ["12+34=", "7+58=", "90+9="]


def _cfg(tmp_path, default_model, **over):
    base = {
        "model.path": default_model,
        "rollout.prompts_per_step": 8, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.lr": 3e-3, "learner.micro_batch_size": 16,
        "trainer.steps": 2, "trainer.output_dir": str(tmp_path), "trainer.run_name": "run",
        "trainer.seed": 0, "eval.n_samples": 2, "eval.max_prompts": 8, "logging.wandb": False,
        "data.n_train": 200, "data.n_test": 16,
    }
    base.update(over)
    return load(None, base)


def _greedy(trainer: Trainer) -> tuple[list[list[int]], int]:
    ids = [trainer.tokenizer(p)["input_ids"] for p in PROBE]
    out = ray.get(trainer.actors.workers[0].generate.remote(ids, SamplingConfig(n=1, max_new_tokens=6, greedy=True)))
    return [s.response_ids for s in out["samples"]], out["version"]


def _engine_matches_learner(trainer: Trainer) -> float:
    """Max |engine log-prob - learner log-prob| on freshly sampled tokens: ~0 iff weights match."""
    from rltrain.driver.flow.rollout import to_batch

    rows = trainer.files.test_rows[:4]
    records = trainer.rollout.generate(rows, SamplingConfig(n=2, max_new_tokens=6, seed=7))
    for r in records:
        r.reward = 0.0
    batch = to_batch(records, trainer.files.pad_id, 0)
    logp = ray.get(trainer.actors.learners[0].compute_logprobs.remote(batch, False))["logp"]
    return float(((logp - batch.sampling_logp).abs() * batch.response_mask).max())


@pytest.mark.parametrize("engine,ranks,zero", [("transformers", 2, 2), ("vllm", 1, 0)])
def test_steps_update_weights_sync_engine_and_resume(tmp_path, ray_session, default_model, engine, ranks, zero):
    cfg = _cfg(tmp_path, default_model, **{"rollout.engine": engine, "learner.num_ranks": ranks,
                                           "learner.zero_stage": zero, "trainer.save_every": 1})
    trainer = Trainer(cfg)
    try:
        greedy0, v0 = _greedy(trainer)
        assert v0 == 0
        before = ray.get(trainer.actors.learners[0].param_checksum.remote())
        metrics = [trainer.step() for _ in range(2)]
        for i, m in enumerate(metrics, start=1):
            trainer.tracker.log(m, step=i)
        after = ray.get(trainer.actors.learners[0].param_checksum.remote())
        greedy2, v2 = _greedy(trainer)
        assert after != before, "learner weights did not change"
        assert v2 == 2 and metrics[-1]["weights/version"] == 2
        assert metrics[-1]["rollout/weight_version"] == 1  # step 2 generated with the weights of sync 1
        assert greedy2 != greedy0, "engine greedy output unchanged after two synced updates"
        assert _engine_matches_learner(trainer) < 1e-3, "engine weights differ from the learner's after sync"
        for key in ("rollout/reward_mean", "actor/pg_loss", "actor/entropy", "actor/grad_norm",
                    "rollout/logprob_diff", "timing_s/weight_sync", "perf/tokens_per_s", "timing_s/gen"):
            assert key in metrics[-1], key
        logged = [json.loads(line) for line in (trainer.files.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in logged] == [1, 2]
        trainer.save()
        sampler_state = trainer.sampler.state_dict()
    finally:
        trainer.close()

    resumed = Trainer(_cfg(tmp_path, default_model, **{"rollout.engine": engine, "learner.num_ranks": ranks,
                                                        "learner.zero_stage": zero, "trainer.steps": 3,
                                                        "trainer.resume": str(tmp_path / "run")}))
    try:
        assert resumed.step_idx == 2 and resumed.version == 2
        assert resumed.sampler.state_dict() == sampler_state
        assert ray.get(resumed.actors.learners[0].param_checksum.remote()) == pytest.approx(after, rel=1e-9)
        assert _engine_matches_learner(resumed) < 1e-3, "resumed engine not synced to the restored weights"
        m3 = resumed.step()
        assert m3["weights/version"] == 3
    finally:
        resumed.close()
