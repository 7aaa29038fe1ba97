"""Multi-turn episodes end to end (Ray + transformers / vLLM engines + DeepSpeed, the search toy model).

- Token-in/token-out: every policy turn the learner sees is exactly what the engine returned for
  that history, every observation exactly the tokenised observation text; observation tokens have
  zero loss weight; turn ids mark the boundaries.
- IGPO's teacher-forced ground-truth probability equals a hand computation with the model.
- Misbehaving environments end their episode with a reason; the run goes on.
- A multi-turn training run with each engine changes the weights and logs the multiturn metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rltrain.config import load
from rltrain.data import rows_from_dicts
from rltrain.data.tasks import make_rows
from rltrain.driver.flow.multiturn import MultiTurnRollout
from rltrain.driver.flow.rollout import to_batch
from rltrain.driver.trainer import Trainer
from rltrain.engines.base import SamplingConfig
from rltrain.workers.group import RankGroup
from rltrain.workers.rollout_worker import RolloutWorker

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def search_model() -> str:
    from rltrain.toy.warm_start import ensure_default_model

    return str(ensure_default_model(task="search"))


def _cfg(tmp_path, model, name, **over):
    base = {"model.path": model, "rollout.prompts_per_step": 6, "rollout.n_samples": 4, "learner.lr": 1e-3,
            "learner.micro_batch_size": 24, "trainer.steps": 2, "trainer.output_dir": str(tmp_path),
            "trainer.run_name": name, "eval.n_samples": 1, "eval.max_prompts": 4, "logging.wandb": False,
            "data.n_train": 100, "data.n_test": 8}
    base.update(over)
    return load(str(ROOT / "configs" / "grpo_search.yaml"), base)


def _rows(n: int, seed: int = 5):
    return rows_from_dicts(make_rows("search", "train", n, seed=seed), source="search/train")


def _episodes(model, engine, env_over=None, n_rows=8):
    cfg = _cfg(None, model, "unused", **(env_over or {}))
    worker = ray.remote(RolloutWorker).remote(model, "rltrain_user_parts:RecordingEngine", "float32", 0, 1,
                                              {"inner": engine})
    tok = AutoTokenizer.from_pretrained(model)
    rollout = MultiTurnRollout(RankGroup([worker]), tok, cfg.env, cfg.rollout.max_new_tokens)
    records = rollout.run(_rows(n_rows), SamplingConfig(n=4, temperature=1.0), first_group=0)
    log = ray.get(worker.__ray_call__.remote(lambda self: self.engine.log))
    ray.kill(worker)
    return records, log, tok


def _runs(mask: list[int]) -> list[tuple[int, int, int]]:
    """(start, end, value) of the maximal runs of equal values."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((start, i, mask[start]))
            start = i
    return out


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_learner_sees_the_engine_ids_plus_the_observation_ids(ray_session, search_model, engine):
    records, log, tok = _episodes(search_model, engine)
    outputs: dict[tuple, list[list[int]]] = {}  # history -> what the engine returned for it (n samples each)
    for seq, out in log:
        outputs.setdefault(tuple(seq), []).append(out)
    assert any(r.episode["turns"] >= 2 for r in records), "no episode made a second turn"
    groups = {r.group for r in records}  # the n episodes of a prompt are sampled apart (own seeds)
    assert sum(len({tuple(r.response_ids) for r in records if r.group == g}) > 1 for g in groups) >= len(groups) // 2
    for r in records:
        for start, end, generated in _runs(r.loss_mask):
            piece = r.response_ids[start:end]
            if generated:  # one engine turn: what the engine returned for exactly this history
                candidates = outputs[tuple(r.prompt_ids + r.response_ids[:start])]
                match = [o for o in candidates if o[: len(piece)] == piece and (len(o) == len(piece) or end == 32)]
                assert match, (piece, candidates)
                candidates.remove(match[0])  # each engine output backs one turn
            else:  # an observation: the tokenised observation text, byte for byte
                text = tok.decode(piece)
                assert text.endswith("\n") and "=" in text and tok(text, add_special_tokens=False)["input_ids"] == piece
    batch = to_batch(records, tok.pad_token_id, step=1, max_response_len=32)
    for i, r in enumerate(records):
        n = len(r.response_ids)
        assert batch.response_mask[i, :n].tolist() == [float(m) for m in r.loss_mask]  # observations weigh 0
        assert batch.turn_ids[i, :n].tolist() == r.turn_ids and (batch.turn_ids[i, n:] == -1).all()
        # a turn starts after the previous turn's observation: turn ids never decrease and step by one
        steps = torch.diff(batch.turn_ids[i, :n])
        assert ((steps == 0) | (steps == 1)).all()


def test_misbehaving_environments_end_their_episode_with_a_reason(ray_session, search_model):
    records, _, _ = _episodes(search_model, "transformers", {"env.name": "rltrain_user_parts:MisbehavingEnv",
                                                            "env.step_timeout_s": 1.0}, n_rows=24)
    by_mode = {}
    for r in records:
        c = r.row.columns["entity"][0]
        mode = "raise" if c <= "e" else "hang" if c <= "j" else "type" if c <= "o" else "flood" if c <= "t" else "ok"
        by_mode.setdefault(mode, []).append(r)
    assert set(by_mode) >= {"raise", "hang", "type", "flood"}
    called = lambda rs: [x for x in rs if x.episode["turns"] >= 1 and x.episode["end"] != "length"]  # noqa: E731
    for r in called(by_mode["raise"]):
        assert r.reward is None and "raised RuntimeError: search backend down" in r.episode["error"]
    for r in called(by_mode["hang"]):
        assert r.reward is None and "did not return within env.step_timeout_s=1.0" in r.episode["error"]
    for r in called(by_mode["type"]):
        assert r.reward is None and "observation of type list" in r.episode["error"]
    flooded = [r for r in by_mode["flood"] if r.episode["end"] == "truncated_observation"]
    assert flooded and all(len(r.response_ids) == 32 and r.reward is not None for r in flooded)
    assert all(r.episode["turns"] <= 3 for r in records)  # max_turns holds whatever the model does


def test_igpo_ground_truth_probability_is_the_teacher_forced_geometric_mean_and_igpo_trains(
        tmp_path, ray_session, search_model):
    trainer = Trainer(_cfg(tmp_path, search_model, "gt", **{"algorithm.preset": "igpo",
                                                             "rollout.engine": "transformers"}))
    try:
        batch, _ = trainer.collect_batch()
        probs = trainer.ground_truth_probs(batch)
        model = AutoModelForCausalLM.from_pretrained(search_model, dtype=torch.float32).eval()
        tok = trainer.tokenizer
        i = int(((batch.turn_ids.max(1).values) >= 1).nonzero()[0])  # a row with two turns
        start = int(batch.resp_start[i])
        for k in range(int(batch.turn_ids[i].max()) + 1):
            first = int((batch.turn_ids[i] == k).nonzero().min())
            history = batch.input_ids[i, : start + first].tolist() + tok("a ")["input_ids"]
            answer = tok(_answer(trainer, batch, i))["input_ids"]
            ids = torch.tensor([history + answer])
            with torch.no_grad():
                logits = model(ids).logits[0, len(history) - 1: -1].float()
            lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(answer).unsqueeze(1)).squeeze(1)
            assert probs[i, k].item() == pytest.approx(math.exp(lp.mean().item()), rel=1e-4)
        _two_steps_change_weights(trainer, "igpo")
    finally:
        trainer.close()


def _answer(trainer, batch, i) -> str:
    return next(r.answer for r in trainer.files.train_rows if r.key == batch.prompt_keys[i])


def _two_steps_change_weights(trainer: Trainer, preset: str) -> None:
    w0 = ray.get(trainer.actors.learners[0].param_checksum.remote())
    metrics = [trainer.step() for _ in range(2)]
    assert ray.get(trainer.actors.learners[0].param_checksum.remote()) != w0
    m = metrics[-1]
    assert 1.0 <= m["multiturn/turns_mean"] <= 3.0 and m["multiturn/obs_token_frac"] > 0
    assert m["multiturn/tool_calls_mean"] > 0 and m["multiturn/env_errors"] == 0
    if preset == "igpo":
        assert 0.0 < m["igpo/gt_prob_first"] < 1.0 and 0.0 <= m["igpo/gt_prob_last"] <= 1.0
        assert m["igpo/info_gain_mean"] != 0.0  # turns changed the probability of the answer
    assert m["actor/pg_loss"] == m["actor/pg_loss"]


def test_multiturn_grpo_training_on_vllm_changes_weights(tmp_path, ray_session, search_model):
    # CurES on 6 prompts: step 2 allocates its 24 episodes by what step 1 saw of each prompt
    trainer = Trainer(_cfg(tmp_path, search_model, "mt_vllm", **{"rollout.engine": "vllm", "algorithm.preset": "grpo",
                                                                  "data.sampler": "cures", "data.n_train": 6}))
    try:
        _two_steps_change_weights(trainer, "grpo")
        m = trainer.step()
        assert m["rollout/samples"] == 24 and m["cures/seen_frac"] == 1.0
        assert 2 <= m["cures/alloc_min"] <= 4 <= m["cures/alloc_max"] <= 8
    finally:
        trainer.close()


def test_igpo_trains_with_the_code_interpreter(tmp_path, ray_session, default_model):
    """The code interpreter is an environment like any other: IGPO's teacher forcing, the tool metrics and
    the observation mask work with it (the default model writes anything; the sandbox runs what parses)."""
    cfg = load(None, {"model.path": default_model, "rollout.engine": "transformers", "data.task": "calc",
                      "env.name": "code", "env.max_turns": 2, "env.turn_tokens": 10, "env.stop": ["\n"],
                      "env.options": {"timeout_s": 2.0}, "rollout.prompts_per_step": 4, "rollout.n_samples": 4,
                      "rollout.max_new_tokens": 24, "algorithm.preset": "igpo", "learner.micro_batch_size": 16,
                      "trainer.steps": 1, "trainer.output_dir": str(tmp_path), "trainer.run_name": "igpo_code",
                      "eval.n_samples": 1, "eval.max_prompts": 4, "logging.wandb": False, "data.n_train": 40,
                      "data.n_test": 4})
    trainer = Trainer(cfg)
    try:
        m = trainer.step()
        assert m["weights/version"] == 1 and math.isfinite(m["actor/pg_loss"])
        assert "igpo/turns_mean" in m and m["multiturn/env_errors"] == 0
        assert {"multiturn/tool_calls_mean", "multiturn/tool_errors_mean", "multiturn/env_seconds_mean"} <= set(m)
        assert 0.0 <= m["multiturn/obs_token_frac"] < 1.0
    finally:
        trainer.close()
