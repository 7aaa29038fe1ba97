"""Side-by-side step time: rltrain vs TRL's GRPOTrainer, same model, prompts, group size, completion
length, learning rate and number of steps, in one run (benchmark, not a test).

    .venv/bin/python launch/bench/bench_vs_trl.py                 # both sizes, writes docs/bench_vs_trl.json
    .venv/bin/python launch/bench/bench_vs_trl.py --sizes tiny --steps 6 --variants trl_fp32 sync_fp32

Sizes: `tiny` = the embedded default (warm-started tiny model, built-in task, 8-token completions);
`small` = a ~20M-param Qwen2 with random weights and 256-token completions (it never stops early,
so both trainers generate the full length). Step time is the median over the steps after the
first two (warm-up: oneDNN builds its kernels for each new shape) and includes generation,
rewards, log-probs, the update and, for rltrain, the weight sync; TRL's is timed by a callback
around each optimizer step.

Variants (each rltrain variant is compared with the TRL run of the same learner precision):
  trl_fp32 / trl_bf16     TRL GRPOTrainer, float32 / `bf16=True`
  sync_fp32               rltrain, generate then update (as TRL does), all float32
  one_step_off_fp32       rltrain, the next batch generates while this one updates (cores split)
  sync_bf16_engine        rltrain sync, rollout engine in bfloat16, learner in float32
  sync_bf16               rltrain sync, engine and learner (DeepSpeed bf16) in bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # rltrain, rewards from this checkout even without `pip install -e`
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "tiny": {"prompts": 32, "group": 8, "max_new_tokens": 8, "lr": 1e-4},
    "small": {"prompts": 4, "group": 4, "max_new_tokens": 256, "lr": 1e-5},
}


def model_for(size: str, workdir: Path) -> str:
    if size == "tiny":
        from rltrain.toy.warm_start import ensure_default_model

        return str(ensure_default_model())
    from rltrain.toy.tiny_model import build_tiny_model

    return str(build_tiny_model(workdir / "small-model", size="small"))


# variant -> (trainer, config overrides for rltrain / bf16 flag for TRL, TRL baseline it is compared with)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "trl_fp32": ("trl", {"bf16": False}, ""),
    "trl_bf16": ("trl", {"bf16": True}, ""),
    "sync_fp32": ("rltrain", {"trainer.schedule": "sync"}, "trl_fp32"),
    "one_step_off_fp32": ("rltrain", {"trainer.schedule": "one_step_off"}, "trl_fp32"),
    "sync_bf16_engine": ("rltrain", {"trainer.schedule": "sync", "rollout.dtype": "bfloat16"}, "trl_fp32"),
    "sync_bf16": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "bfloat16"}, "trl_bf16"),
}


def run_rltrain(model: str, spec: dict, steps: int, workdir: Path, name: str, over: dict) -> list[float]:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    cfg = load(None, {
        "model.path": model, "rollout.prompts_per_step": spec["prompts"], "rollout.n_samples": spec["group"],
        "rollout.max_new_tokens": spec["max_new_tokens"],
        "learner.lr": spec["lr"], "learner.micro_batch_size": spec["prompts"] * spec["group"],  # one pass, as TRL
        "trainer.steps": steps, "trainer.output_dir": str(workdir), "trainer.run_name": name,
        "logging.wandb": False, "logging.console": False, "algorithm.preset": "grpo",
        "algorithm.regularizer": {"name": "none"},  # TRL default beta=0: no KL, no reference model
        **over,
    })
    trainer = Trainer(cfg)
    try:
        return [trainer.step()["timing_s/step"] for _ in range(steps)]
    finally:
        trainer.close()


def run_trl(model: str, spec: dict, steps: int, workdir: Path, bf16: bool) -> list[float]:
    import rewards
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rltrain.data.tasks import DEFAULT_TASK, make_rows

    rows = make_rows(DEFAULT_TASK, "train", spec["prompts"] * (steps + 1), seed=0)
    data = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    n = spec["prompts"] * spec["group"]
    args = GRPOConfig(
        output_dir=str(workdir / "trl"), use_cpu=True, report_to="none", learning_rate=spec["lr"],
        per_device_train_batch_size=n, gradient_accumulation_steps=1, num_generations=spec["group"],
        max_completion_length=spec["max_new_tokens"], max_steps=steps, logging_steps=1, save_strategy="no",
        beta=0.0, temperature=1.0, top_k=0, disable_dropout=True, dataloader_num_workers=0, seed=0, bf16=bf16,
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


def steady(times: list[float]) -> float:
    """Median step time after the first two steps (warm-up)."""
    return statistics.median(times[2:] if len(times) > 2 else times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_vs_trl.json"),
                        help="JSON record: median step time per variant and ratio, plus each step's time")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = SIZES[size]
            model = model_for(size, Path(tmp))
            r = results[size] = {**spec, "steps": args.steps, "variants": {}}
            for name in args.variants:
                kind, over, _ = VARIANTS[name]
                times = (run_trl(model, spec, args.steps, Path(tmp) / size, **over) if kind == "trl"
                         else run_rltrain(model, spec, args.steps, Path(tmp) / size, name, over))
                r["variants"][name] = {"step_s": steady(times), "all": times}
                print(f"{size} {name}: {steady(times):.3f} s/step", flush=True)
            for name, v in r["variants"].items():
                base = VARIANTS[name][2]
                if base in r["variants"]:
                    v["vs"] = base
                    v["ratio"] = v["step_s"] / r["variants"][base]["step_s"]
                    print(f"{size} {name}: {v['ratio']:.2f}x {base}", flush=True)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
