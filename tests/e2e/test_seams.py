"""The runtime's seams, end to end (Ray + a real engine + DeepSpeed, tiny model):

- an engine named by import path (`rollout.engine: pkg.mod:Class`) with its own options runs a step;
- the engine protocol's continuation and stop conditions, through a rollout worker;
- the schedule state goes into the checkpoint and comes back (sync schedule; one_step_off has its own test).
"""

from __future__ import annotations

import pytest
import ray

from rltrain.config import load
from rltrain.driver.trainer import Trainer
from rltrain.engines.base import SamplingConfig

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, **over):
    base = {
        "model.path": default_model, "rollout.prompts_per_step": 4, "rollout.n_samples": 4,
        "rollout.max_new_tokens": 6, "learner.lr": 1e-3, "learner.micro_batch_size": 16,
        "algorithm.preset": "dr_grpo", "trainer.steps": 2, "trainer.output_dir": str(tmp_path),
        "trainer.run_name": "seams", "eval.n_samples": 1, "eval.max_prompts": 4, "logging.wandb": False,
        "data.n_train": 100, "data.n_test": 8,
    }
    base.update(over)
    return load(None, base)


def _engine_attr(worker, name: str):
    return ray.get(worker.__ray_call__.remote(lambda self: getattr(self.engine, name)))


def test_engine_by_import_path_runs_a_step_and_the_protocol_continues_sequences(tmp_path, ray_session,
                                                                                default_model):
    cfg = _cfg(tmp_path, default_model, **{"rollout.engine": "rltrain_user_parts:CountingEngine",
                                            "rollout.engine_options": {"tag": "mine"}})
    trainer = Trainer(cfg)
    try:
        m = trainer.step()
        worker = trainer.actors.workers[0]
        assert _engine_attr(worker, "tag") == "mine"
        assert _engine_attr(worker, "generate_calls") >= 1
        assert _engine_attr(worker, "synced_versions") == [1] and m["weights/version"] == 1
        assert m["rollout/weight_version"] == 0 and m["actor/pg_loss"] == m["actor/pg_loss"]  # finite, not NaN

        # continuation: the greedy tail of a sequence equals what generate gave after its head
        prompt = trainer.rollout.prompt_ids(trainer.files.test_rows[0])  # a task prompt: ~4 answer tokens + EOS
        greedy = SamplingConfig(n=1, max_new_tokens=6, greedy=True)
        full = ray.get(worker.generate.remote([prompt], greedy))["samples"][0].response_ids
        assert len(full) >= 4, full
        head, tail = full[:2], full[2:]
        cont = ray.get(worker.continue_sequences.remote([prompt + head, prompt], SamplingConfig(
            n=5, max_new_tokens=len(tail), greedy=True)))["samples"]
        assert [s.prompt_index for s in cont] == [0, 1]  # one continuation per sequence, n ignored
        assert cont[0].response_ids == tail
        # stop condition: the first greedy token as a stop token ends the sample right after it
        stop = ray.get(worker.generate.remote([prompt], SamplingConfig(
            n=1, max_new_tokens=6, greedy=True, stop_token_ids=(full[0],))))["samples"][0]
        assert stop.response_ids == full[:1] and stop.stop_reason == "stop" and stop.finished
        # the engine frees its weights' memory, refuses to generate until a sync loads weights again,
        # and after restore + sync generates exactly what it did before
        assert ray.get(worker.free_memory.remote()) is True
        with pytest.raises(ray.exceptions.RayTaskError, match="memory was freed"):
            ray.get(worker.generate.remote([prompt], greedy))
        assert ray.get(worker.restore_memory.remote()) is True
        trainer._push_weights()
        assert ray.get(worker.generate.remote([prompt], greedy))["samples"][0].response_ids == full
    finally:
        trainer.close()


def test_schedule_state_round_trips_through_a_checkpoint(tmp_path, ray_session, default_model):
    trainer = Trainer(_cfg(tmp_path, default_model, **{"rollout.engine": "transformers"}))
    try:
        trainer.step()
        state = trainer.schedule.state_dict()
        trainer.save()
        next_rows = [r.key for r in trainer.sampler.take(4)]  # what the next step would have taken
    finally:
        trainer.close()
    resumed = Trainer(_cfg(tmp_path, default_model, **{"rollout.engine": "transformers", "trainer.steps": 3,
                                                        "trainer.resume": str(tmp_path / "seams")}))
    try:
        assert resumed.schedule.state_dict() == state
        batch, _ = resumed.collect_batch()
        assert list(dict.fromkeys(batch.prompt_keys)) == next_rows
    finally:
        resumed.close()


def test_greedy_evaluation_scores_the_greedy_completions(tmp_path, ray_session, default_model):
    from rltrain.data.tasks import is_correct
    from rltrain.driver.flow.evaluation import evaluate

    trainer = Trainer(_cfg(tmp_path, default_model, **{"rollout.engine": "transformers", "eval.greedy": True,
                                                        "trainer.run_name": "greedy"}))
    try:
        # the toy config's exact_match also accepts "321" for "0321": rows without a leading zero only
        rows = [r for r in trainer.files.test_rows if not r.answer.startswith("0")][:8]
        out = evaluate(trainer.eval_rollout, rows, 2, 1.0, 6, greedy=True)
        greedy = SamplingConfig(n=1, max_new_tokens=6, greedy=True)
        samples = ray.get(trainer.actors.workers[0].generate.remote([trainer.rollout.prompt_ids(r) for r in rows],
                                                                    greedy))["samples"]
        texts = [trainer.tokenizer.decode(s.response_ids) for s in samples]
        expected = sum(is_correct(t, r.answer) for t, r in zip(texts, rows)) / len(rows)
        assert out["eval/greedy_pass@1"] == pytest.approx(expected) and "eval/pass@2" in out
    finally:
        trainer.close()
