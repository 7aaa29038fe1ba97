"""LoRA end to end (Ray + transformers engine + DeepSpeed, the embedded tiny model).

Only the adapters train (the frozen base stays bit for bit), the engine generates with the merged
weights after a sync (its greedy log-probs change), the checkpoint holds the adapters (not the frozen
base) and resumes them, and the export is a plain model directory with the base's parameter count
whose weights are the learner's merged policy.
"""

from __future__ import annotations

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from rltrain.config import ConfigError, load
from rltrain.driver.trainer import Trainer
from rltrain.engines.base import SamplingConfig

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, **over):
    base = {"model.path": default_model, "rollout.engine": "transformers", "rollout.prompts_per_step": 8,
            "rollout.n_samples": 4, "rollout.max_new_tokens": 6, "learner.lr": 1e-2, "learner.micro_batch_size": 32,
            "learner.lora.rank": 4, "learner.lora.alpha": 8, "algorithm.preset": "dr_grpo", "trainer.steps": 4,
            "trainer.output_dir": str(tmp_path), "trainer.run_name": "lora", "eval.n_samples": 1,
            "eval.max_prompts": 4, "logging.wandb": False, "data.n_train": 200, "data.n_test": 8}
    base.update(over)
    return load(None, base)


def test_lora_trains_adapters_only_syncs_merged_weights_and_exports_a_plain_model(tmp_path, ray_session,
                                                                                   default_model):
    trainer = Trainer(_cfg(tmp_path, default_model))
    learner, worker = trainer.actors.learners[0], trainer.actors.workers[0]
    prompt = trainer.rollout.prompt_ids(trainer.files.test_rows[0])
    greedy = SamplingConfig(n=1, max_new_tokens=5, greedy=True)
    try:
        base0, adapter0 = (ray.get(learner.param_checksum.remote(p)) for p in ("base", "adapter"))
        before = ray.get(worker.generate.remote([prompt], greedy))["samples"][0]
        for _ in range(2):
            trainer.step()
        assert ray.get(learner.param_checksum.remote("base")) == base0  # the frozen base did not move
        assert ray.get(learner.param_checksum.remote("adapter")) != adapter0
        after = ray.get(worker.generate.remote([prompt], greedy))["samples"][0]
        assert after.logprobs != before.logprobs  # the engine got the merged weights
        trainer.save()
        adapters = ray.get(learner.__ray_call__.remote(
            lambda self: {n: p.detach().clone() for n, p in self.engine.module.named_parameters() if "lora_" in n}))
        policy = ray.get(learner.param_checksum.remote("policy"))
        export = tmp_path / "export"
        trainer.actors.learners.call("export", str(export), trainer.files.model_path)
    finally:
        trainer.close()
    ckpt = next((tmp_path / "lora" / "checkpoints").glob("step_*")) / "learner"
    saved = sum(f.stat().st_size for f in ckpt.rglob("*model_states.pt"))
    assert saved < 0.5 * sum(p.numel() * 4 for p in AutoModelForCausalLM.from_pretrained(default_model).parameters())
    plain = AutoModelForCausalLM.from_pretrained(str(export))
    base = AutoModelForCausalLM.from_pretrained(default_model)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in base.parameters())
    assert not any("lora" in n for n, _ in plain.named_parameters())
    merged = sum(float(v.detach().double().abs().sum()) for _, v in plain.named_parameters(remove_duplicate=False))
    assert merged == pytest.approx(policy, rel=1e-6)
    resumed = Trainer(_cfg(tmp_path, default_model, **{"trainer.resume": str(tmp_path / "lora")}))
    try:
        back = ray.get(resumed.actors.learners[0].__ray_call__.remote(
            lambda self: {n: p.detach().clone() for n, p in self.engine.module.named_parameters() if "lora_" in n}))
        assert back.keys() == adapters.keys() and all(torch.equal(back[n], adapters[n]) for n in adapters)
    finally:
        resumed.close()


def test_lora_refuses_zero3():
    with pytest.raises(ConfigError, match="learner.lora.rank > 0 with learner.zero_stage 3"):
        load(None, ["learner.lora.rank=4", "learner.zero_stage=3"])
