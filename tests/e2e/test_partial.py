"""Partial rollouts end to end (Ray + engines + DeepSpeed, tiny model).

- Both engines resume a sample cut at a token budget exactly: greedy generation in 2-token chunks
  through `continue_sequences` gives the ids and log-probs of one uninterrupted call.
- A run with `rollout.partial_tokens: 2` (answers take ~5 tokens) resumes samples across rounds and
  steps, trains on them, keeps the waiting samples in the checkpoint and resumes them after a restart.
- An engine that says it cannot resume is refused before any actor starts.
"""

from __future__ import annotations

import pytest
import ray
import torch

from transformers import AutoTokenizer

from rltrain.config import load
from rltrain.data.tasks import DEFAULT_TASK, make_rows
from rltrain.driver.trainer import Trainer
from rltrain.engines.base import SamplingConfig
from rltrain.workers.rollout_worker import RolloutWorker

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, **over):
    base = {
        "model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 6,
        "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "rollout.partial_tokens": 2, "learner.lr": 1e-3,
        "learner.micro_batch_size": 24, "algorithm.preset": "dr_grpo", "trainer.steps": 6,
        "trainer.output_dir": str(tmp_path), "trainer.run_name": "partial", "eval.n_samples": 1,
        "eval.max_prompts": 4, "logging.wandb": False, "data.n_train": 200, "data.n_test": 8,
    }
    base.update(over)
    return load(None, base)


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_engine_resumes_a_cut_sample_exactly(ray_session, default_model, engine):
    worker = ray.remote(RolloutWorker).remote(default_model, engine, "float32", 0, 1)
    try:
        tok = AutoTokenizer.from_pretrained(default_model)
        prompts = [tok(r["prompt"])["input_ids"] for r in make_rows(DEFAULT_TASK, "test", 6, seed=3)]
        greedy = SamplingConfig(n=1, max_new_tokens=6, greedy=True)
        whole = ray.get(worker.generate.remote(prompts, greedy))["samples"]
        ids = [[] for _ in prompts]
        lps: list[list[float]] = [[] for _ in prompts]
        chunk = SamplingConfig(n=1, max_new_tokens=2, greedy=True)
        done = [False] * len(prompts)
        for _ in range(3):
            todo = [i for i in range(len(prompts)) if not done[i]]
            out = ray.get(worker.continue_sequences.remote([prompts[i] + ids[i] for i in todo], chunk))["samples"]
            for s in out:
                i = todo[s.prompt_index]
                ids[i] += s.response_ids
                lps[i] += s.logprobs
                done[i] = s.finished
        assert any(len(w.response_ids) > 2 for w in whole)  # some answers really were cut and resumed
        for i, w in enumerate(whole):
            assert ids[i] == w.response_ids
            assert torch.allclose(torch.tensor(lps[i]), torch.tensor(w.logprobs), atol=1e-4)
            assert done[i] == w.finished
    finally:
        ray.kill(worker)


def test_partial_run_resumes_samples_across_steps_and_checkpoints_them(tmp_path, ray_session, default_model):
    trainer = Trainer(_cfg(tmp_path, default_model))
    try:
        first = trainer.step()
        assert first["rollout/gen_rounds"] >= 3  # 2-token rounds until a group is done (answers ~5 tokens)
        assert first["rollout/partial_resumed"] > 0
        assert first["rollout/response_length_max"] > 2  # trained on resumed samples longer than one round
        w0 = ray.get(trainer.actors.learners[0].param_checksum.remote())
        metrics = [trainer.step() for _ in range(2)]
        assert ray.get(trainer.actors.learners[0].param_checksum.remote()) != w0
        assert all(m["rollout/response_length_max"] <= 6 for m in [first, *metrics])
        pool = trainer.schedule.collector.partial
        state = [(r.group, r.response_ids, r.logprobs, r.version) for r in pool.waiting]
        unfinished = sum(not pool.done(r) for r in pool.waiting)
        assert unfinished > 0  # this seed ends step 3 with groups still generating
        trainer.save()
    finally:
        trainer.close()
    resumed = Trainer(_cfg(tmp_path, default_model, **{"trainer.resume": str(tmp_path / "partial")}))
    try:
        pool = resumed.schedule.collector.partial
        assert [(r.group, r.response_ids, r.logprobs, r.version) for r in pool.waiting] == state
        assert resumed.schedule.collector.next_group > max([r.group for r in pool.waiting], default=-1)
        m = resumed.step()
        assert m["rollout/partial_resumed"] >= unfinished  # the restored samples went on generating
        assert m["actor/pg_loss"] == m["actor/pg_loss"]
    finally:
        resumed.close()


def test_an_engine_that_cannot_resume_is_refused_when_the_config_loads(tmp_path, default_model):
    from rltrain.config import ConfigError

    with pytest.raises(ConfigError, match="cannot pause and resume a sample"):
        _cfg(tmp_path, default_model, **{"rollout.engine": "rltrain_user_parts:NoResumeEngine"})
