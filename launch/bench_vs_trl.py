"""Side-by-side step time: rltrain vs TRL's GRPOTrainer, same model, prompts, group size, completion
length, learning rate and number of steps, in one run (benchmark, not a test).

    .venv/bin/python launch/bench_vs_trl.py                 # both sizes, writes docs/bench_vs_trl.json
    .venv/bin/python launch/bench_vs_trl.py --sizes tiny --steps 4

Sizes: `tiny` = the embedded default (warm-started tiny model, built-in task, 8-token completions);
`small` = a ~20M-param Qwen2 with random weights and 256-token completions (it never stops early,
so both trainers generate the full length). Step time is the mean over steps after the first
(warm-up excluded) and includes generation, rewards, log-probs, the update and, for rltrain,
the weight sync; TRL's is timed by a callback around each optimizer step.

rltrain runs twice: `sync` (generate, then update, like TRL) and `one_step_off` (the next batch is
generated while this one updates, one weight version stale; on CPU the two phases split the cores).
Each gets its own ratio to TRL's step time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "tiny": {"prompts": 32, "group": 8, "max_new_tokens": 8, "lr": 1e-4},
    "small": {"prompts": 4, "group": 4, "max_new_tokens": 256, "lr": 1e-5},
}


def model_for(size: str, workdir: Path) -> str:
    if size == "tiny":
        from rltrain.warm_start import ensure_default_model

        return str(ensure_default_model())
    from rltrain.tiny_model import build_tiny_model

    return str(build_tiny_model(workdir / "small-model", size="small"))


SCHEDULES = ("sync", "one_step_off")


def run_rltrain(model: str, spec: dict, steps: int, workdir: Path, schedule: str) -> list[float]:
    from rltrain.config import load
    from rltrain.trainer import Trainer

    cfg = load(None, {
        "model.path": model, "rollout.prompts_per_step": spec["prompts"], "rollout.n_samples": spec["group"],
        "rollout.max_new_tokens": spec["max_new_tokens"], "rollout.max_model_len": 512,
        "learner.lr": spec["lr"], "learner.micro_batch_size": 256 if spec["max_new_tokens"] <= 16 else 8,
        "trainer.steps": steps, "trainer.output_dir": str(workdir), "trainer.run_name": f"rltrain-{schedule}",
        "trainer.schedule": schedule,
        "logging.wandb": False, "logging.console": False, "algorithm.preset": "grpo",
        "algorithm.regularizer": {"name": "none"},  # TRL default beta=0: no KL, no reference model
    })
    trainer = Trainer(cfg)
    try:
        return [trainer.step()["timing_s/step"] for _ in range(steps)]
    finally:
        trainer.close()


def run_trl(model: str, spec: dict, steps: int, workdir: Path) -> list[float]:
    import rewards
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rltrain.tasks import DEFAULT_TASK, make_rows

    rows = make_rows(DEFAULT_TASK, "train", spec["prompts"] * (steps + 1), seed=0)
    data = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    n = spec["prompts"] * spec["group"]
    args = GRPOConfig(
        output_dir=str(workdir / "trl"), use_cpu=True, report_to="none", learning_rate=spec["lr"],
        per_device_train_batch_size=n, gradient_accumulation_steps=1, num_generations=spec["group"],
        max_completion_length=spec["max_new_tokens"], max_steps=steps, logging_steps=1, save_strategy="no",
        beta=0.0, temperature=1.0, top_k=0, disable_dropout=True, dataloader_num_workers=0, seed=0,
    )
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    tok = AutoTokenizer.from_pretrained(model)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), reward_funcs=rewards.load("exact_match"),
                          args=args, train_dataset=data, processing_class=tok, callbacks=[StepTimer()])
    trainer.train()
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--out", default="docs/bench_vs_trl.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = SIZES[size]
            model = model_for(size, Path(tmp))
            ours = {s: run_rltrain(model, spec, args.steps, Path(tmp) / size, s) for s in args.schedules}
            trl = run_trl(model, spec, args.steps, Path(tmp) / size)
            mean = lambda xs: sum(xs[1:]) / max(1, len(xs) - 1)  # noqa: E731 (first step = warm-up)
            r = results[size] = {**spec, "steps": args.steps, "trl_step_s": mean(trl), "trl_all": trl}
            line = f"{size}: TRL {r['trl_step_s']:.2f}s/step"
            for s, times in ours.items():
                r[f"rltrain_{s}_step_s"] = mean(times)
                r[f"ratio_{s}_over_trl"] = mean(times) / mean(trl)
                r[f"rltrain_{s}_all"] = times
                line += f"  rltrain[{s}] {mean(times):.2f}s/step ({mean(times) / mean(trl):.2f}x)"
            print(line, flush=True)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
