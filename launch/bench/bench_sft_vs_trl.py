"""Benchmark (not a test): rltrain's SFT against TRL's SFTTrainer on the same toy data and model.

    .venv/bin/python launch/bench/bench_sft_vs_trl.py [--steps 60] [--out docs/sft_vs_trl.json]

Both train the embedded default model on the built-in task's demonstrations (prompt / completion, the
loss on the completion and the end-of-sequence token), the same examples in the same number per step,
learning rate, optimizer (AdamW, no warm-up, no decay), precision (float32) and steps; the held-out
token loss is measured the same way for both (rltrain's `eval_loss` on the saved policies, outside the
training clock), and so is what each export generates (pass@1 and pass@8 of 8 samples at temperature 1
on the held-out prompts, `rltrain.toy.warm_start.evaluate_pass_at_k`). Recorded: training and held-out
loss curves, seconds per step, pass@k of the base and of both exports, the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def heldout_loss(model_dir: str, test: list, max_length: int) -> float:
    """Mean token loss of the held-out examples under a saved model (the same computation for both)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rltrain.sft.batches import to_rows
    from rltrain.sft.data import encode
    from rltrain.workers.sft_learner import token_logprobs

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = to_rows([encode(tok, ex, max_length) for ex in test], tok.pad_token_id or 0, max_length, False)
    with torch.no_grad():
        logp, _ = token_logprobs(model, rows, packed=False)
    return float(-logp.mean())


def generation(model_dir: str, cfg) -> dict:
    """pass@1 / pass@8 and the format rate of 8 samples at temperature 1 on the held-out prompts."""
    from rltrain.data.tasks import DEFAULT_TASK, make_rows
    from rltrain.toy.warm_start import evaluate_pass_at_k

    task = DEFAULT_TASK if cfg.data.task == "default" else cfg.data.task
    out = evaluate_pass_at_k(model_dir, make_rows(task, "test", cfg.data.n_test, cfg.train.seed), n_samples=8, ks=(1, 8))
    return {k: out[k] for k in ("pass@1", "pass@8", "format_ok")}


def run_rltrain(args, cfg_over: dict) -> dict:
    from rltrain.config.sft import load_sft
    from rltrain.sft.train import SFTTrainer

    cfg = load_sft(str(ROOT / "configs" / "sft_toy.yaml"), {**cfg_over, "train.run_name": f"rl_{time.strftime('%H%M%S')}"})
    trainer = SFTTrainer(cfg)
    try:
        curve, times = [], []
        for _ in range(args.steps):
            m = trainer.step()
            curve.append(m["sft/loss"])
            times.append(m["timing_s/step"])
        out = trainer.run_dir / "model"
        trainer.ranks.call("export", str(out), trainer.model_path)
        return {"train_loss": curve, "step_s": sum(times[1:]) / max(1, len(times) - 1), "model": str(out)}
    finally:
        trainer.close()


def run_trl(args, cfg, model_path: str, train: list) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    data = Dataset.from_list([{"prompt": ex.prompt, "completion": ex.completion} for ex in train])
    out = ROOT / "runs" / "bench_sft_vs_trl" / f"trl_{time.strftime('%H%M%S')}"
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    tc = cfg.train
    targs = SFTConfig(output_dir=str(out), use_cpu=True, report_to="none", learning_rate=cfg.learner.lr,
                      per_device_train_batch_size=tc.examples_per_step, gradient_accumulation_steps=1,
                      max_steps=args.steps, logging_steps=1, save_strategy="no", lr_scheduler_type="constant",
                      warmup_steps=0, weight_decay=cfg.learner.weight_decay, max_length=tc.max_length,
                      completion_only_loss=True, seed=tc.seed, dataloader_num_workers=0, packing=False)
    trainer = SFTTrainer(model=model_path, args=targs, train_dataset=data, processing_class=tok,
                         callbacks=[Clock()])
    trainer.train()
    trainer.save_model(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"train_loss": losses, "step_s": sum(times[1:]) / max(1, len(times) - 1), "model": str(out / "model")}


def main(argv: list[str] | None = None) -> None:
    from rltrain.config.hardware import cpu_description
    from rltrain.config.sft import load_sft
    from rltrain.sft.train import load_examples

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", default=str(ROOT / "docs" / "sft_vs_trl.json"))
    args = ap.parse_args(argv)
    over = {"train.output_dir": str(ROOT / "runs" / "bench_sft_vs_trl"), "logging.wandb": False,
            "logging.report": False, "train.steps": args.steps}
    cfg = load_sft(str(ROOT / "configs" / "sft_toy.yaml"), over)
    train, test = load_examples(cfg)
    ours = run_rltrain(args, over)
    from rltrain.toy.warm_start import ensure_default_model

    base = str(ensure_default_model())
    theirs = run_trl(args, cfg, base, train)
    record = {"cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
              "examples_per_step": cfg.train.examples_per_step, "lr": cfg.learner.lr,
              "command": "python launch/bench/bench_sft_vs_trl.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "heldout_loss_base": heldout_loss(base, test, cfg.train.max_length), "generation_base": generation(base, cfg)}
    for name, res in (("rltrain", ours), ("trl", theirs)):
        record[name] = {"step_s": res["step_s"], "train_loss": res["train_loss"],
                        "heldout_loss_after": heldout_loss(res["model"], test, cfg.train.max_length),
                        "generation_after": generation(res["model"], cfg)}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    for name in ("rltrain", "trl"):
        r = record[name]
        print(f"{name}: {r['step_s']:.2f} s/step, train loss {r['train_loss'][0]:.3f} -> {r['train_loss'][-1]:.3f}, "
              f"held-out {record['heldout_loss_base']:.3f} -> {r['heldout_loss_after']:.3f}, pass@1 "
              f"{record['generation_base']['pass@1']:.3f} -> {r['generation_after']['pass@1']:.3f}")


if __name__ == "__main__":
    main()
