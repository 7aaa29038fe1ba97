"""Benchmark (not a test): the real model (SmolLM2-135M-Instruct) on word problems, same budget and seed.

    .venv/bin/python launch/bench/bench_real_model.py [--minutes 45] [--steps N] [--variants grpo lora ...]
        [--eval-every 15] [--out docs/real_model] [--append]

Variants, each `configs/smollm2_gsm.yaml` plus overrides (VARIANTS), trained for --minutes of training
wall time (evaluation excluded) or --steps: `grpo` (full fine-tuning), `lora` (learner.lora.rank 16,
lr 1e-4), `dr_grpo` and `dapo` (other presets), `grpo_fp32` (the fast defaults' control: all fp32 on
the transformers engine);
`trl`: TRL's GRPOTrainer on the same model, data, reward, group size, lengths,
sampling, lr and KL coefficient, in the machine's fast precision, its policy scored by rltrain's engine
and the same verifier on the same test prompts (outside its training clock). Per run:
sampled pass@1 and pass@2, greedy pass@1 and response length on the test split every --eval-every
steps against samples and training seconds; step time, learner peak RSS; test_alt (phrased unlike the
training templates) before and after. Writes <out>.json and a table into <out>.md between
`<!-- bench:begin -->` / `<!-- bench:end -->`; --append adds to the rows already there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Evaluation: 64 test prompts x 2 samples at the training temperature (pass@1 and pass@2) plus one greedy
# completion each; the precision is the config's (`auto`: bf16 only where the machine has bf16 matrix units)
EVAL = {"data.n_test": 64, "eval.max_prompts": 64, "eval.n_samples": 2, "eval.greedy": True}
VARIANTS: dict[str, dict] = {
    "grpo": {},
    "lora": {"learner.lora.rank": 16, "learner.lora.alpha": 32, "learner.lr": 1e-4},
    "dr_grpo": {"algorithm.preset": "dr_grpo"},
    "dapo": {"algorithm.preset": "dapo"},
    # the fast defaults' control: everything in fp32 on the transformers engine (the first recorded run's settings)
    "grpo_fp32": {"model.dtype": "float32", "rollout.engine": "transformers"},
}


def _alt_eval(trainer) -> float:
    """pass@1 on the run's task (word_problems or arithmetic) phrased unlike its training prompts (test_alt)."""
    from rltrain.data import rows_from_dicts
    from rltrain.data.chat_tasks import ALT_SPLIT_TASKS, chat_task_rows
    from rltrain.driver.flow.evaluation import evaluate

    ec, task = trainer.cfg.eval, trainer.cfg.data.task
    if task not in ALT_SPLIT_TASKS:
        raise SystemExit(f"--alt: data.task={task!r} has no test_alt split (tasks with one: {', '.join(ALT_SPLIT_TASKS)})")
    rows = rows_from_dicts(chat_task_rows(task, "test_alt", ec.max_prompts, 0), source=f"{task}/test_alt")
    return evaluate(trainer.eval_rollout, rows, ec.n_samples, ec.temperature, trainer.cfg.rollout.max_new_tokens,
                    ec.correct_threshold, seed=trainer.cfg.trainer.seed + 4242)["eval/pass@1"]


def _point(trainer, samples: float, train_s: float) -> dict:
    """One point of the learning curve: sampled pass@1 and pass@2, greedy pass@1, mean response length."""
    m = trainer.evaluate()
    return {"step": trainer.step_idx, "samples": samples, "train_s": round(train_s, 1), "pass@1": m["eval/pass@1"],
            "pass@2": m.get("eval/pass@2"), "greedy": m.get("eval/greedy_pass@1"),
            "response_len": m.get("eval/response_length_mean")}


def setting(cfg=None) -> dict:
    """What a row ran on: precision, rollout engine (TRL's own generate when `cfg` is None), CPU, date."""
    import torch

    from rltrain.config.hardware import cpu_description, fast_dtype
    from rltrain.engines import resolve_engine_name

    dtype = cfg.model.dtype if cfg is not None else fast_dtype()
    engine = resolve_engine_name(cfg.rollout.engine, torch.cuda.is_available()) if cfg is not None else "trl"
    return {"dtype": dtype, "engine": engine, "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d")}


def run(name: str, minutes: float, eval_every: int, seed: int, eval_at: tuple[int, ...] = (),
        max_steps: int | None = None) -> dict:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    over = {**EVAL, **VARIANTS[name], "trainer.seed": seed, "trainer.steps": 10_000,
            "trainer.output_dir": str(ROOT / "runs" / "bench_real_model"),
            "trainer.run_name": f"{name}_s{seed}_{time.strftime('%H%M%S')}"}
    trainer = Trainer(load(str(ROOT / "configs" / "smollm2_gsm.yaml"), over))
    try:
        curve = [_point(trainer, 0, 0.0)]
        alt_before = _alt_eval(trainer)
        train_s, samples, steps = 0.0, 0.0, []
        while train_s < 60 * minutes and trainer.step_idx < (max_steps or 10_000):
            t0 = time.perf_counter()
            m = trainer.step()
            train_s += time.perf_counter() - t0
            samples += m["rollout/samples"]
            steps.append({k: m.get(k) for k in ("timing_s/step", "timing_s/gen", "timing_s/update", "rollout/reward_mean",
                                                 "perf/learner_peak_rss_mb", "actor/entropy", "rollout/logprob_diff",
                                                 "rollout/response_length_mean")})
            print(f"[{name}] step {trainer.step_idx} {train_s:.0f}s reward {m['rollout/reward_mean']:.3f} "
                  f"step {m['timing_s/step']:.1f}s", flush=True)
            if trainer.step_idx % eval_every == 0 or trainer.step_idx in eval_at:
                curve.append(_point(trainer, samples, train_s))
                print(f"[{name}] eval {curve[-1]}", flush=True)
        if curve[-1]["step"] != trainer.step_idx:
            curve.append(_point(trainer, samples, train_s))
        alt_after = _alt_eval(trainer)
    finally:
        trainer.close()
    mean = lambda k: sum(s[k] for s in steps if s[k] is not None) / max(1, len(steps))  # noqa: E731
    return {"variant": name, "seed": seed, "overrides": VARIANTS[name], **setting(trainer.cfg), "curve": curve,
            "test_alt_before": alt_before, "test_alt_after": alt_after, "steps": len(steps),
            "step_s": mean("timing_s/step"), "gen_s": mean("timing_s/gen"), "update_s": mean("timing_s/update"),
            "learner_peak_rss_mb": max(s["perf/learner_peak_rss_mb"] or 0 for s in steps),
            "logprob_diff": mean("rollout/logprob_diff"), "train_response_len": mean("rollout/response_length_mean"),
            "train_reward_first5": _mean([s["rollout/reward_mean"] for s in steps[:5]]),
            "train_reward_last5": _mean([s["rollout/reward_mean"] for s in steps[-5:]])}


def engine_scores(model_dir: str, split: str, n_prompts: int, n_samples: int, temperature: float,
                  max_new_tokens: int, seed: int = 4242) -> dict:
    """Sampled pass@1 (mean over `n_samples` per prompt) and pass@`n_samples`, greedy pass@1 and the mean
    sampled response length of a model directory on a word-problem split, with rltrain's transformers
    engine and the `math` reward (how the TRL run is scored: the same prompts, sampling and verifier)."""
    import rewards
    from transformers import AutoTokenizer

    from rltrain.config.hardware import fast_dtype
    from rltrain.data import render_prompt
    from rltrain.data.word_problems import make_word_problem_rows
    from rltrain.engines.base import SamplingConfig
    from rltrain.engines.transformers_engine import TransformersEngine

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = make_word_problem_rows(split, n_prompts, 0)
    ids = [tok(render_prompt(r["prompt"], tok), add_special_tokens=False)["input_ids"] for r in rows]
    engine = TransformersEngine(model_dir, fast_dtype(), seed)
    verify = rewards.load("math")

    def correct(samples, per_prompt: int) -> list[float]:
        texts = [tok.decode(smp.response_ids, skip_special_tokens=True) for smp in samples]
        per_sample = [r for r in rows for _ in range(per_prompt)]  # the engine returns a prompt's samples together
        return [x or 0.0 for x in verify([r["prompt"] for r in per_sample], texts, answer=[r["answer"] for r in per_sample])]

    sampled = engine.generate(ids, SamplingConfig(n=n_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                                                  seed=seed))
    hits = correct(sampled, n_samples)
    greedy = correct(engine.generate(ids, SamplingConfig(n=1, max_new_tokens=max_new_tokens, greedy=True)), 1)
    by_prompt = [hits[i:i + n_samples] for i in range(0, len(hits), n_samples)]
    return {"pass@1": sum(hits) / len(hits), f"pass@{n_samples}": sum(max(h) for h in by_prompt) / len(by_prompt),
            "greedy": sum(greedy) / len(greedy),
            "response_len": sum(len(smp.response_ids) for smp in sampled) / len(sampled)}


def run_trl(minutes: float, eval_every: int, seed: int, max_steps: int | None = None) -> dict:
    """TRL's GRPOTrainer on the same model, data, reward, group size, lengths, sampling, lr and KL
    coefficient, in the machine's fast precision (fp32 without bf16 matrix units: TRL's `bf16=True`
    was 1.4x slower there, docs/benchmarks.md), stopped after `minutes` of training; scored by
    `engine_scores` on the same test prompts and samples as the rltrain variants, before, every
    `eval_every` steps (the policy saved and scored outside the training clock) and at the end; or
    stopped after `max_steps`. TRL's loss is its default (loss_type "dapo": one mean over the batch's
    tokens; rltrain's grpo preset averages each sequence's tokens, then the sequences)."""
    import yaml
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import rewards
    from rltrain.config.hardware import fast_dtype
    from rltrain.data.word_problems import make_word_problem_rows
    from rltrain.toy.smollm2 import ensure_smollm2

    cfg = yaml.safe_load((ROOT / "configs" / "smollm2_gsm.yaml").read_text())
    rc, ec = cfg["rollout"], cfg["eval"]
    model = str(ensure_smollm2())
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = make_word_problem_rows("train", cfg["data"]["n_train"], 0)
    data = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    workdir = ROOT / "runs" / "bench_real_model" / f"trl_s{seed}_{time.strftime('%H%M%S')}"
    n = rc["prompts_per_step"] * rc["n_samples"]
    args = GRPOConfig(output_dir=str(workdir), use_cpu=True, bf16=fast_dtype() == "bfloat16", report_to="none",
                      learning_rate=cfg["learner"]["lr"], per_device_train_batch_size=n, gradient_accumulation_steps=1,
                      num_generations=rc["n_samples"], max_completion_length=rc["max_new_tokens"], max_steps=10_000,
                      logging_steps=1, save_strategy="no", beta=0.001, temperature=rc["temperature"], top_k=0,
                      seed=seed, dataloader_num_workers=0)
    clock = {"train_s": 0.0, "steps": 0}
    train_rewards: list[float] = []  # TRL's logged batch reward mean, one per step (logging_steps=1)
    score = lambda path, split="test": engine_scores(path, split, EVAL["eval.max_prompts"],  # noqa: E731
                                                    EVAL["eval.n_samples"], ec["temperature"], rc["max_new_tokens"])
    point = lambda path: {"step": clock["steps"], "samples": clock["steps"] * n,  # noqa: E731
                          "train_s": round(clock["train_s"], 1), **score(path)}
    curve = [point(model)]
    alt_before = score(model, "test_alt")["pass@1"]

    class Budget(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kw):
            clock["train_s"] += time.perf_counter() - self.t0
            clock["steps"] += 1
            print(f"[trl] step {clock['steps']} {clock['train_s']:.0f}s", flush=True)
            control.should_training_stop = clock["train_s"] >= 60 * minutes or clock["steps"] >= (max_steps or 10_000)
            if clock["steps"] % eval_every == 0 and not control.should_training_stop:
                path = workdir / f"step_{clock['steps']}"
                model.save_pretrained(str(path))
                tokenizer.save_pretrained(str(path))
                curve.append(point(str(path)))
                print(f"[trl] eval {curve[-1]}", flush=True)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                train_rewards.append(float(logs["reward"]))

    trainer = GRPOTrainer(model=model, reward_funcs=rewards.load("math"), args=args, train_dataset=data,
                          processing_class=tokenizer, callbacks=[Budget()])
    trainer.train()
    trainer.save_model(str(workdir / "model"))
    curve.append(point(str(workdir / "model")))
    return {"variant": "trl", "seed": seed, "overrides": {}, **setting(), "steps": clock["steps"], "curve": curve,
            "test_alt_before": alt_before, "test_alt_after": score(str(workdir / "model"), "test_alt")["pass@1"],
            "step_s": clock["train_s"] / max(1, clock["steps"]), "gen_s": float("nan"), "update_s": float("nan"),
            # the whole process (TRL generates and learns in it; the scoring engine adds a bf16 copy of the model)
            "learner_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "train_reward_first5": _mean(train_rewards[:5]), "train_reward_last5": _mean(train_rewards[-5:])}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _before_after(r: dict, key: str, scale: float = 100.0) -> str:
    first, last = r["curve"][0].get(key), r["curve"][-1].get(key)
    return "-" if first is None or last is None else f"{scale * first:.1f} -> {scale * last:.1f}"


def table(rows: list[dict]) -> str:
    head = ("| variant (precision, engine, date) | steps (samples generated, train min) | test pass@1 (step: value) | pass@2 | greedy | response tokens "
            "| test_alt before -> after | train reward first/last 5 | step s (gen / update) | learner peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    curve = lambda r: ", ".join("%d: %.1f" % (c["step"], 100 * c["pass@1"]) for c in r["curve"])  # noqa: E731
    short = {"bfloat16": "bf16", "float32": "fp32"}
    seed = lambda r: f", seed {r['seed']}" if r.get("seed") else ""  # noqa: E731
    lines = [f"| {r['variant']} ({short.get(r.get('dtype'), '?')}, {r.get('engine', '?')}, {r.get('date', '?')}{seed(r)}) | {r['steps']} ({r['curve'][-1]['samples']:.0f}, {r['curve'][-1]['train_s'] / 60:.0f}) | {curve(r)} "
             f"| {_before_after(r, 'pass@2')} | {_before_after(r, 'greedy')} | {_before_after(r, 'response_len', 1.0)} "
             f"| {100 * r['test_alt_before']:.1f} -> {100 * r['test_alt_after']:.1f} | {r['train_reward_first5']:.3f} / "
             f"{r['train_reward_last5']:.3f} | {r['step_s']:.0f} ({r['gen_s']:.0f} / {r['update_s']:.0f}) | "
             f"{r['learner_peak_rss_mb']:.0f} |" for r in rows]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=45.0)
    p.add_argument("--eval-every", type=int, default=15)
    p.add_argument("--eval-at", type=int, nargs="*", default=[],
                   help="more steps to evaluate at (e.g. where another run's curve has a point)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (or --minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", choices=[*VARIANTS, "trl"], default=["grpo", "lora", "trl"])
    p.add_argument("--out", default=str(ROOT / "docs" / "real_model"))
    p.add_argument("--append", action="store_true", help="add to the rows already in <out>.json")
    args = p.parse_args()
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    out = Path(args.out)
    rows = json.loads(out.with_suffix(".json").read_text()) if args.append and out.with_suffix(".json").exists() else []
    for name in args.variants:
        eval_at = tuple(args.eval_at)
        rows.append(run_trl(args.minutes, args.eval_every, args.seed, args.steps) if name == "trl"
                    else run(name, args.minutes, args.eval_every, args.seed, eval_at, args.steps))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        md = out.with_suffix(".md")
        text = md.read_text() if md.exists() else "<!-- bench:begin -->\n<!-- bench:end -->\n"
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        md.write_text(text[: text.index(begin) + len(begin)] + "\n" + table(rows) + text[text.index(end):])
    print(table(rows))


if __name__ == "__main__":
    main()
