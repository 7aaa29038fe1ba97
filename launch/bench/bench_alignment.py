"""Alignment with a learned reward (a benchmark, not a test): train a reward model on the built-in
preference pairs, then PPO with a critic vs GRPO, each against that reward model and against the
verifiable reward, with the same budget and seed on the embedded default.

    .venv/bin/python launch/bench/bench_alignment.py [--steps 120] [--rm-steps 600] [--critic-lr 3e-4] [--out docs/alignment.json]

Runs (`--runs`, preset:reward[:critic init]): PPO with a critic from the policy's backbone and from the
reward model (`critic.path`), GRPO, each against the RM; PPO and GRPO against the verifiable reward.
Before them, how the RM ranks the initial policy's own samples (its accuracy on the built-in pairs
measures constructed negatives, not the policy's mistakes).

Every run logs both rewards every step (the one it does not train on with weight 0), so the reward
model's score can be watched against the verifiable accuracy (reward hacking: the RM's score goes up
while exact-match accuracy does not). Held-out pass@1 is judged by exact match for every run
(`eval.reward`). Prints a table and writes the figures to --out.
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
RUNS = ROOT / "runs" / "bench_alignment"


def train_rm(steps: int, seed: int) -> dict:
    from rltrain.config.rm import load_rm
    from rltrain.rm.train import RewardModelTrainer

    cfg = load_rm(str(ROOT / "configs" / "rm_toy.yaml"), {"train.steps": steps, "train.seed": seed,
                                                     "train.output_dir": str(RUNS),
                                                     "train.run_name": f"rm-{time.strftime('%H%M%S')}"})
    trainer = RewardModelTrainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.close()


def rm_on_policy_samples(rm_path: str, n_prompts: int = 64, n_samples: int = 8, seed: int = 0) -> dict:
    """How the reward model ranks the initial policy's own samples (temperature 1, held-out prompts):
    the correlation of its score with exact-match correctness, and its accuracy over every (correct,
    incorrect) pair of samples of one prompt. The built-in pairs' accuracy is on constructed negatives;
    this is on the mistakes the policy makes, which is what PPO/GRPO optimise against."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import rewards
    from rltrain.data.tasks import is_correct, make_rows
    from rltrain.toy.warm_start import _sample, ensure_default_model

    path = ensure_default_model()
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    torch.manual_seed(seed)
    rows = make_rows("rev4", "test", n_prompts, seed=seed + 7)
    samples = _sample(model, tok, [r["prompt"] for r in rows], n_samples, 1.0, 8)
    texts = [text for text, _ in samples]
    per_sample = [r for r in rows for _ in range(n_samples)]  # prompt-major, as _sample returns them
    correct = torch.tensor([float(is_correct(t, r["answer"])) for t, r in zip(texts, per_sample)])
    scores = torch.tensor(rewards.load("reward_model", model_path=rm_path)([r["prompt"] for r in per_sample], texts))
    won = total = 0
    for i in range(n_prompts):
        c, s = correct[i * n_samples:(i + 1) * n_samples], scores[i * n_samples:(i + 1) * n_samples]
        for a in s[c > 0]:
            won += int((a > s[c == 0]).sum())
            total += int((c == 0).sum())
    return {"samples": len(texts), "correct_frac": round(float(correct.mean()), 3),
            "score_correctness_corr": round(float(torch.corrcoef(torch.stack([scores, correct]))[0, 1]), 3),
            "pairwise_accuracy": round(won / total, 3) if total else None, "pairs": total}


def run_policy(name: str, preset: str, train_on: str, rm_path: str, steps: int, seed: int,
               critic_from: str = "policy", critic_lr: float = 3e-4) -> dict:
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    rm = {"name": "reward_model", "params": {"model_path": rm_path}}
    verifiable = {"name": "exact_match"}
    functions = [{**rm, "weight": 1.0}, {**verifiable, "weight": 0.0}] if train_on == "rm" else \
        [{**verifiable, "weight": 1.0}, {**rm, "weight": 0.0}]
    cfg = load(str(ROOT / "configs" / "grpo_toy.yaml"), {
        "algorithm.preset": preset, "trainer.steps": steps, "trainer.seed": seed, "reward.functions": functions,
        "eval.reward": {"functions": [verifiable]}, "eval.n_samples": 8, "trainer.output_dir": str(RUNS),
        "trainer.run_name": name, "logging.wandb": False, "logging.report": False, "logging.console": False,
        "critic.lr": critic_lr, "critic.path": rm_path if critic_from == "rm" else None})
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    rows = [json.loads(line) for line in (RUNS / name / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps_rows = [r for r in rows if "reward/reward_model_mean" in r]
    tenth = max(1, len(steps_rows) // 10)

    def mean(key: str, part: list) -> float:
        vals = [r[key] for r in part if key in r]
        return sum(vals) / max(1, len(vals))

    first, last = steps_rows[:tenth], steps_rows[-tenth:]
    out = {"preset": preset, "train_on": train_on, "pass@1_before": summary["pass@1_before"],
           "pass@1_after": summary["pass@1_after"], "wall_s": round(time.perf_counter() - t0, 1)}
    for key, label in (("reward/reward_model_mean", "rm_score"), ("reward/exact_match_mean", "exact_match")):
        out[f"{label}_first_tenth"], out[f"{label}_last_tenth"] = round(mean(key, first), 3), round(mean(key, last), 3)
    for key in ("critic/explained_variance", "critic/value_loss", "rollout/response_length_mean"):
        if any(key in r for r in steps_rows):
            out[f"{key}_first_tenth"], out[f"{key}_last_tenth"] = round(mean(key, first), 3), round(mean(key, last), 3)
    out["trace"] = [{k: r.get(k) for k in ("step", "reward/reward_model_mean", "reward/exact_match_mean",
                                           "critic/explained_variance")} for r in steps_rows[::10]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rm-steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default="ppo:rm,ppo:rm:rm,grpo:rm,ppo:verifiable,grpo:verifiable",
                    help="preset:reward[:critic init], reward rm|verifiable, critic init policy (default)|rm")
    ap.add_argument("--critic-lr", type=float, default=3e-4)
    ap.add_argument("--rm-run", default=None, help="reuse a reward model trained by an earlier run (its run dir)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    rm = json.loads((Path(args.rm_run) / "summary.json").read_text()) if args.rm_run else train_rm(args.rm_steps, args.seed)
    on_policy = rm_on_policy_samples(rm["model"], seed=args.seed)
    print(json.dumps({"rm_on_policy_samples": on_policy}), flush=True)
    result = {"rm": {"steps": rm["steps"], "before": rm["before"], "after": rm["after"], "wall_s": round(rm["wall_s"], 1),
                     "on_policy_samples": on_policy},
              "steps": args.steps, "seed": args.seed, "critic_lr": args.critic_lr, "runs": {}}
    for spec in args.runs.split(","):
        preset, train_on, critic_from = (spec.split(":") + ["policy"])[:3]
        result["runs"][spec] = run_policy(f"{preset}-{train_on}-{critic_from}-{time.strftime('%H%M%S')}", preset,
                                          train_on, rm["model"], args.steps, args.seed, critic_from, args.critic_lr)
        print(json.dumps({spec: {k: v for k, v in result["runs"][spec].items() if k != "trace"}}), flush=True)
    ray.shutdown()
    print(f"reward model: held-out accuracy {rm['before']['rm/accuracy']:.3f} -> {rm['after']['rm/accuracy']:.3f}")
    print("| run | pass@1 before -> after | RM score first -> last tenth | exact match first -> last tenth | wall s |")
    print("|---|---|---|---|---|")
    for spec, r in result["runs"].items():
        print(f"| {spec} | {r['pass@1_before']:.3f} -> {r['pass@1_after']:.3f} | {r['rm_score_first_tenth']:.2f} -> "
              f"{r['rm_score_last_tenth']:.2f} | {r['exact_match_first_tenth']:.3f} -> {r['exact_match_last_tenth']:.3f} "
              f"| {r['wall_s']:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
