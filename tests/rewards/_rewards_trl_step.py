"""One GRPOTrainer step (TRL) with an rltrain reward; run as a subprocess by test_rewards_trl_verl.py.

Prints one JSON line with what happened. vllm and deepspeed are hidden from TRL's import-time
availability checks (importlib.util.find_spec returns None for a None entry in sys.modules):
they are irrelevant on CPU and cost tens of seconds to import on a 2-core machine.
"""

import json
import math
import os
import sys
import tempfile

sys.modules["vllm"] = None
sys.modules["deepspeed"] = None
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]


def main() -> None:
    import torch
    from datasets import Dataset
    from transformers import Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    import rewards
    from _rewards_helpers import char_tokenizer, tiny_qwen2_config

    torch.manual_seed(0)
    tok = char_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok)))
    ds = Dataset.from_dict({"prompt": ["1+1=", "2+2=", "3+3=", "4+4="], "answer": ["2", "4", "6", "8"]})
    reward = rewards.load("combine", rewards=[
        {"name": "math", "weight": 1.0, "workers": 1},
        {"name": "overlong", "max_length": 8, "cache_length": 6, "weight": 0.5},
    ])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = GRPOConfig(
            output_dir=out_dir, use_cpu=True, per_device_train_batch_size=4, num_generations=2,
            max_completion_length=8, max_steps=1, report_to=[], logging_steps=1, save_strategy="no",
            learning_rate=1e-2, temperature=1.5, bf16=False, dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=cfg, train_dataset=ds, processing_class=tok)
        trainer.train()
    logs = trainer.state.log_history[0]
    name = reward.__name__
    result = {
        "name": name,
        "global_step": trainer.state.global_step,
        "reward_mean": logs.get(f"rewards/{name}/mean"),
        "samples_scored": reward.stats["samples"],
        "params_changed": any(not torch.equal(before[n], p) for n, p in model.named_parameters()),
        "finite_loss": math.isfinite(logs.get("loss", float("nan"))),
    }
    reward.close()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
