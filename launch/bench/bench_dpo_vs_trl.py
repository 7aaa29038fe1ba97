"""DPO: rltrain (launch/dpo.py's trainer on its DeepSpeed learner) vs TRL's DPOTrainer on the same data,
model and hyper-parameters: training loss and rewards/accuracies per step, held-out (eval_) curves, and
seconds per step (benchmark, not a test).

    .venv/bin/python launch/bench/bench_dpo_vs_trl.py                    # 100 steps, both trainers
    .venv/bin/python launch/bench/bench_dpo_vs_trl.py --steps 20 --variants rltrain trl

Data: configs/dpo_toy.yaml's built-in pairs (rev4: 3000 train, 300 held-out) on the embedded default
model. Both: sigmoid loss, beta 0.1, AdamW lr 1e-4 constant (no warm-up, no decay), betas (0.9, 0.999),
no weight decay, gradient clipping at 1.0, 32 pairs a step in one micro-batch, float32, held-out
evaluation before training and every 20 steps. Each trainer draws its own order of the pairs (seed 0).
Step time is the median over the steps after the first two: TRL's is timed by a callback around each
optimizer step (its reference forward included); rltrain's is its `timing_s/step` (drawing the pairs, the
reference's log-probs of pairs not seen before, packing, the learner call).

Variants: `rltrain`; `trl` (TRL's default: the reference model runs on every step's batch);
`trl_precompute` (precompute_ref_log_probs=True: every pair's reference log-probs before training, not
in the step time). `--threads` sets torch's threads in every process (rltrain's learner.threads too).
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
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SPEC = {"beta": 0.1, "lr": 1e-4, "pairs_per_step": 32, "eval_every": 20, "n_train": 3000, "n_test": 300, "seed": 0}
KEYS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen",
        "logps/rejected")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_rltrain(model: str, steps: int, workdir: Path, threads: int) -> dict:
    from rltrain.config.dpo import load_dpo
    from rltrain.dpo.train import DPOTrainer

    cfg = load_dpo(str(ROOT / "configs" / "dpo_toy.yaml"), {
        "model_path": model, "dpo.loss": "sigmoid", "dpo.beta": SPEC["beta"], "learner.lr": SPEC["lr"],
        "learner.micro_batch_size": SPEC["pairs_per_step"], "learner.threads": threads, "learner.grad_clip": 1.0,
        "train.steps": steps, "train.pairs_per_step": SPEC["pairs_per_step"], "train.eval_every": SPEC["eval_every"],
        "data.n_train": SPEC["n_train"], "data.n_test": SPEC["n_test"], "train.seed": SPEC["seed"],
        "train.output_dir": str(workdir), "train.run_name": "rltrain", "logging.wandb": False, "logging.console": False})
    trainer = DPOTrainer(cfg)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    rows = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train = [{"step": r["step"], **{k: r[k] for k in KEYS}} for r in rows if "loss" in r]
    evals = [{"step": r["step"], **{k: r[f"eval_{k}"] for k in KEYS}} for r in rows if "eval_loss" in r]
    return {"train": train, "eval": evals, "step_s_all": [r["timing_s/step"] for r in rows if "loss" in r]}


def run_trl(model: str, steps: int, workdir: Path, precompute: bool) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from rltrain.rm.preferences import builtin_pairs

    def data(split: str, n: int) -> Dataset:
        return Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                                  for p in builtin_pairs("rev4", split, n, SPEC["seed"])])

    args = DPOConfig(
        output_dir=str(workdir / "trl"), use_cpu=True, bf16=False, report_to="none", learning_rate=SPEC["lr"],
        lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0, beta=SPEC["beta"], loss_type=["sigmoid"],
        per_device_train_batch_size=SPEC["pairs_per_step"], per_device_eval_batch_size=64,
        gradient_accumulation_steps=1, max_steps=steps, logging_steps=1, save_strategy="no", eval_strategy="steps",
        eval_steps=SPEC["eval_every"], seed=SPEC["seed"], dataloader_num_workers=0, precompute_ref_log_probs=precompute,
        max_length=64)
    times, train, evals = [], [], []

    class Record(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs and "rewards/accuracies" in logs:
                train.append({"step": state.global_step, **{key: logs[key] for key in KEYS}})
            if logs and "eval_loss" in logs:
                evals.append({"step": state.global_step, **{key: logs[f"eval_{key}"] for key in KEYS}})

    tok = AutoTokenizer.from_pretrained(model)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args,
                         train_dataset=data("train", SPEC["n_train"]), eval_dataset=data("test", SPEC["n_test"]),
                         processing_class=tok, callbacks=[Record()])
    t0 = time.perf_counter()
    trainer.evaluate()  # step 0, as rltrain evaluates before training
    trainer.train()
    return {"train": train, "eval": evals, "step_s_all": times, "wall_s": time.perf_counter() - t0}


def steady(times: list[float]) -> float:
    return statistics.median(times[2:] if len(times) > 2 else times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=["rltrain", "trl", "trl_precompute"],
                        choices=["rltrain", "trl", "trl_precompute"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_dpo_vs_trl.json"))
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rltrain.config.hardware import cpu_description
    from rltrain.toy.warm_start import ensure_default_model

    model = str(ensure_default_model())
    results: dict = {"spec": {**SPEC, "steps": args.steps, "threads": args.threads}, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            load_before, t0 = load_average(), time.perf_counter()
            r = (run_rltrain(model, args.steps, Path(tmp) / name, args.threads) if name == "rltrain"
                 else run_trl(model, args.steps, Path(tmp) / name, precompute=name == "trl_precompute"))
            r.update(step_s=steady(r["step_s_all"]), wall_s=time.perf_counter() - t0, load_before=load_before,
                     load_after=load_average())
            results["variants"][name] = r
            last = r["eval"][-1] if r["eval"] else {}
            print(f"{name}: {r['step_s']:.3f} s/step; held-out loss {last.get('loss', float('nan')):.4f}, "
                  f"rewards/accuracies {last.get('rewards/accuracies', float('nan')):.3f} at step {last.get('step')}; "
                  f"load {load_before} -> {r['load_after']}", flush=True)
    results["machine"] = {"cpu": cpu_description(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    import trl

    results["versions"] = {"trl": trl.__version__, "torch": torch.__version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
