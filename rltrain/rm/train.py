"""Reward-model training: preference pairs -> a sequence classifier exported as a plain HF directory.

The data path: load (or build) the pairs, render each side as prompt + completion the way the
`reward_model` reward does, tokenize once, then per step draw `pairs_per_step` pairs (a permutation
per epoch, fixed by the seed), shard them over the ranks, train with the Bradley-Terry loss, and
evaluate pairwise accuracy on the held-out pairs (`rm/accuracy`, `rm/margin_mean`, and the accuracy
per rejection kind for the built-in set). The export at `<run_dir>/model` loads with
`rewards.load("reward_model", model_path=...)`, TRL and verl as it is.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from rltrain.config.rm import RMConfig
from rltrain.rm.preferences import PreferencePair, builtin_pairs, load_pairs
from rltrain.workers.deepspeed_role import stop_if_skipped
from rltrain.workers.reward_model_learner import PairBatch


def _pairs(cfg: RMConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    d = cfg.data
    if d.path is None:
        return (builtin_pairs(d.task, "train", d.n_train, cfg.train.seed),
                builtin_pairs(d.task, "test", d.n_test, cfg.train.seed))
    pairs = load_pairs(d.path)
    if d.test_path:
        return pairs, load_pairs(d.test_path)
    n_test = max(1, int(len(pairs) * d.test_fraction))
    if n_test >= len(pairs):
        raise ValueError(f"data.path={d.path}: {len(pairs)} pairs are too few to hold out {n_test}")
    return pairs[:-n_test], pairs[-n_test:]


def render(tokenizer: Any, prompt: Any, completion: Any) -> str:
    """prompt + completion as `rewards.reward_model` renders them (its chat template for messages)."""
    from rewards._text import completion_text, prompt_text

    chat = isinstance(prompt, list) and isinstance(completion, list)
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
    return prompt_text(prompt) + ("\n" if chat else "") + completion_text(completion)


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    width = max(len(ids) for ids in enc)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for i, row in enumerate(enc):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return ids, mask


def encode_pairs(tokenizer: Any, pairs: list[PreferencePair], max_length: int) -> PairBatch:
    tokenizer.truncation_side = "left"  # keep the completion
    chosen = _encode(tokenizer, [render(tokenizer, p.prompt, p.chosen) for p in pairs], max_length)
    rejected = _encode(tokenizer, [render(tokenizer, p.prompt, p.rejected) for p in pairs], max_length)
    return PairBatch(*chosen, *rejected, torch.ones(len(pairs)))


def rank_shards(batch: PairBatch, ranks: int, micro: int) -> list[tuple[PairBatch, list[int]]]:
    """Equal shards per rank (zero-weight copies of pair 0 fill the last) and their micro-batch cuts."""
    per_rank = math.ceil(len(batch) / ranks)
    idx = torch.arange(per_rank * ranks)
    real = idx < len(batch)
    padded = batch.index(torch.where(real, idx, torch.zeros_like(idx)))
    padded.weights = padded.weights * real
    cuts = list(range(0, per_rank, micro)) + [per_rank]
    return [(padded.index(idx[r * per_rank:(r + 1) * per_rank]), cuts) for r in range(ranks)]


def pairwise_metrics(chosen: torch.Tensor, rejected: torch.Tensor, kinds: list[str]) -> dict[str, float]:
    wins = (chosen > rejected).float()
    out = {"rm/accuracy": float(wins.mean()), "rm/margin_mean": float((chosen - rejected).mean()),
           "rm/chosen_mean": float(chosen.mean()), "rm/rejected_mean": float(rejected.mean())}
    for kind in sorted(set(kinds)):
        sel = torch.tensor([k == kind for k in kinds])
        out[f"rm/accuracy_{kind}"] = float(wins[sel].mean())
    return out


class RewardModelTrainer:
    """Ranks of `RewardModelLearner` on Ray; `run()` trains, evaluates and exports."""

    def __init__(self, cfg: RMConfig) -> None:
        import ray
        from transformers import AutoTokenizer

        from rltrain.toy.warm_start import ensure_default_model
        from rltrain.workers.group import RankGroup
        from rltrain.workers.net import free_port
        from rltrain.workers.deepspeed_role import RankSpec
        from rltrain.workers.reward_model_learner import RewardModelLearner

        self.cfg = cfg
        self.model_path = cfg.model_path or str(ensure_default_model())
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        train, test = _pairs(cfg)
        self.train = encode_pairs(self.tokenizer, train, cfg.train.max_length)
        self.test = encode_pairs(self.tokenizer, test, cfg.train.max_length)
        self.test_kinds = [p.kind for p in test]
        self.run_dir = Path(cfg.train.output_dir) / (cfg.train.run_name or f"rm-{time.strftime('%Y%m%d-%H%M%S')}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=True)
        n = cfg.learner.num_ranks
        share = math.floor(100 * min(1.0, ray.cluster_resources().get("CPU", 1) / n)) / 100
        master = ("127.0.0.1", free_port())
        self.ranks = RankGroup([ray.remote(RewardModelLearner).options(num_cpus=share).remote(
            RankSpec(model_path=self.model_path, cfg=cfg.learner, rank=r, world_size=n, master=master,
                     seed=cfg.train.seed)) for r in range(n)])
        self.gen = torch.Generator().manual_seed(cfg.train.seed)
        self.order, self.cursor = torch.randperm(len(self.train), generator=self.gen), 0
        self.step_idx = 0

    def _next_pairs(self) -> PairBatch:
        k = self.cfg.train.pairs_per_step
        picked: list[torch.Tensor] = []
        while (have := sum(len(t) for t in picked)) < k:
            if self.cursor >= len(self.order):
                self.order, self.cursor = torch.randperm(len(self.train), generator=self.gen), 0
            take = self.order[self.cursor:self.cursor + k - have]
            picked.append(take)
            self.cursor += len(take)
        batch = self.train.index(torch.cat(picked))
        batch.weights = torch.full((len(batch),), 1.0 / len(batch))
        return batch

    def evaluate(self) -> dict[str, float]:
        from rltrain.workers.sharding import shard_for_ranks

        shards = shard_for_ranks(len(self.test), len(self.ranks))
        outs = self.ranks.call_each("score_pairs", [(self.test.index(s),) for s in shards])
        chosen, rejected = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
        return pairwise_metrics(chosen, rejected, self.test_kinds)

    def step(self) -> dict[str, float]:
        import algorithms

        shards = rank_shards(self._next_pairs(), len(self.ranks), self.cfg.learner.micro_batch_size)
        outs = self.ranks.call_each("train_minibatch", shards)
        self.step_idx += 1
        stop_if_skipped(outs, "reward model", self.step_idx)
        metrics = algorithms.reduce_metrics([m for o in outs for m in o["algo"]])
        metrics["rm/grad_norm"], metrics["rm/lr"] = outs[0]["actor/grad_norm"], outs[0]["actor/lr"]
        return metrics

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        log = (self.run_dir / "metrics.jsonl").open("w")
        before = self.evaluate()
        print(f"[rltrain] reward model before training: accuracy {before['rm/accuracy']:.3f} on {len(self.test)} "
              "held-out pairs", flush=True)
        log.write(json.dumps({"step": 0, **before}) + "\n")
        every = self.cfg.train.eval_every
        for step in range(1, self.cfg.train.steps + 1):
            metrics = self.step()
            if every and step % every == 0 and step < self.cfg.train.steps:
                metrics.update(self.evaluate())
                print(f"[rltrain] step {step}: held-out accuracy {metrics['rm/accuracy']:.3f}, loss "
                      f"{metrics['rm/loss']:.3f}", flush=True)
            log.write(json.dumps({"step": step, **metrics}) + "\n")
        after = self.evaluate()
        log.write(json.dumps({"step": self.cfg.train.steps, **after}) + "\n")
        log.close()
        export = self.run_dir / "model"
        self.ranks.call("export", str(export), self.model_path)
        summary = {"steps": self.cfg.train.steps, "wall_s": time.perf_counter() - t0, "before": before, "after": after,
                   "model": str(export), "train_pairs": len(self.train), "test_pairs": len(self.test),
                   "run_dir": str(self.run_dir)}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"[rltrain] reward model after {self.cfg.train.steps} steps: accuracy {after['rm/accuracy']:.3f}, "
              f"margin {after['rm/margin_mean']:.2f}; exported to {export}", flush=True)
        return summary

    def close(self) -> None:
        self.ranks.kill()
