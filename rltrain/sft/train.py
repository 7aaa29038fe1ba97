"""Supervised fine-tuning: demonstrations -> the policy, exported as a plain HF directory that
`launch/grpo.py` takes as `model.path` (SFT -> RL).

The data path: load the rows (a file, a Hugging Face dataset, or the built-in task's prompts with their
answers), encode each once (rltrain/sft/data.py: the loss on the assistant's or completion's tokens),
then per step take `examples_per_step` examples in a seeded permutation per epoch, make rows (one
example each, or packed), shard them over the ranks and train (rltrain/workers/sft_learner.py); the
held-out loss is evaluated every `eval_every` steps. Checkpoints hold the learners' DeepSpeed state and
the data cursor, so `train.resume` continues exactly; metrics go to metrics.jsonl, W&B and the
console like an RL run's.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from rltrain.config.sft import SFTConfig
from rltrain.data.datasets import DataError
from rltrain.data.sources import iter_records
from rltrain.sft.batches import rank_shards, to_rows
from rltrain.sft.data import Example, encode, to_example
from rltrain.workers.deepspeed_role import stop_if_skipped

__all__ = ["SFTTrainer", "load_examples"]


def load_examples(cfg: SFTConfig) -> tuple[list[Example], list[Example]]:
    """(train, held-out) examples of `cfg.data` (module docstring)."""
    d = cfg.data
    if d.path is None:
        from rltrain.data.tasks import DEFAULT_TASK, make_rows

        task = DEFAULT_TASK if d.task == "default" else d.task
        demo = lambda split, n: [Example(f"{task}/{split}[{i}]", r["prompt"], r["answer"])  # noqa: E731
                                 for i, r in enumerate(make_rows(task, split, n, cfg.train.seed))]
        return demo("train", d.n_train), demo("test", d.n_test)
    keys = (d.prompt_key, d.completion_key, d.messages_key)
    rows = [to_example(label, row, *keys) for label, row in iter_records(d.path, d.split)]
    if d.test_path:
        return rows, [to_example(label, row, *keys) for label, row in iter_records(d.test_path, d.split)]
    n_test = max(1, int(len(rows) * d.test_fraction))
    if n_test >= len(rows):
        raise DataError(f"data.path={d.path}: {len(rows)} rows are too few to hold out {n_test}")
    return rows[:-n_test], rows[-n_test:]


def _encode_all(tokenizer: Any, examples: list[Example], max_length: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for ex in examples:
        ids, mask = encode(tokenizer, ex, max_length)
        if sum(mask[1:]) == 0:
            raise DataError(f"{ex.label}: no token to learn within train.max_length={max_length}")
        out.append((ids, mask))
    return out


class SFTTrainer:
    """Ranks of `SFTLearner` on Ray; `run()` trains, evaluates, checkpoints and exports."""

    def __init__(self, cfg: SFTConfig) -> None:
        from transformers import AutoTokenizer

        from rltrain.driver.recovery import checkpoint

        self.cfg = cfg
        self.model_path = self._model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else \
            self.tokenizer.eos_token_id
        train, test = load_examples(cfg)
        self.train = _encode_all(self.tokenizer, train, cfg.train.max_length)
        self.test = _encode_all(self.tokenizer, test, cfg.train.max_length)
        tc = cfg.train
        self.resume_from = None
        if tc.resume:
            self.run_dir = Path(tc.resume)
            self.resume_from = checkpoint.latest(self.run_dir / "checkpoints")
            if self.resume_from is None:
                raise FileNotFoundError(f"train.resume={tc.resume}: no complete checkpoint under {self.run_dir}/checkpoints")
        else:
            self.run_dir = Path(tc.output_dir) / (tc.run_name or f"sft-{time.strftime('%Y%m%d-%H%M%S')}")
            if self.run_dir.exists() and any(self.run_dir.iterdir()):
                raise FileExistsError(f"train.run_name: {self.run_dir} exists; resume it with train.resume={self.run_dir}")
        self.step_idx, self.epoch, self.cursor = 0, 0, 0
        self.order = self._permutation(0)
        self._start_ranks()

    def _model_path(self) -> str:
        if self.cfg.model_path:
            path = Path(self.cfg.model_path).expanduser()
            if not (path / "config.json").is_file():
                raise DataError(f"model_path={self.cfg.model_path!r}: not a Hugging Face model directory")
            return str(path)
        from rltrain.data import tasks
        from rltrain.toy.warm_start import ensure_default_model

        task = tasks.DEFAULT_TASK if self.cfg.data.task == "default" else self.cfg.data.task
        return str(ensure_default_model(task=task))

    def _start_ranks(self) -> None:
        import ray

        from rltrain.workers.group import RankGroup
        from rltrain.workers.net import free_port
        from rltrain.workers.deepspeed_role import RankSpec
        from rltrain.workers.sft_learner import SFTLearner

        if not ray.is_initialized():
            import os

            ray.init(**({} if os.environ.get("RAY_ADDRESS") else {"include_dashboard": False, "log_to_driver": True}))
        n = self.cfg.learner.num_ranks
        share = math.floor(100 * min(1.0, ray.cluster_resources().get("CPU", 1) / n)) / 100
        master = ("127.0.0.1", free_port())
        self.ranks = RankGroup([ray.remote(SFTLearner).options(num_cpus=share).remote(
            RankSpec(model_path=self.model_path, cfg=self.cfg.learner, rank=r, world_size=n, master=master,
                     dtype=self.cfg.dtype, seed=self.cfg.train.seed), packed=self.cfg.train.packing)
            for r in range(n)])

    # ----- data order ------------------------------------------------------------------------
    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.train), generator=g).tolist()

    def _next_examples(self) -> list[tuple[list[int], list[int]]]:
        picked = []
        while len(picked) < self.cfg.train.examples_per_step:
            if self.cursor >= len(self.order):
                self.epoch, self.cursor = self.epoch + 1, 0
                self.order = self._permutation(self.epoch)
            picked.append(self.train[self.order[self.cursor]])
            self.cursor += 1
        return picked

    # ----- steps ------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        import algorithms

        tc = self.cfg.train
        batch = to_rows(self._next_examples(), self.pad_id, tc.max_length, tc.packing)
        t0 = time.perf_counter()
        outs = self.ranks.call_each("train_minibatch", rank_shards(batch, len(self.ranks), self.cfg.learner.micro_batch_size,
                                                                  self.cfg.learner.max_tokens_per_micro_batch))
        self.step_idx += 1
        stop_if_skipped(outs, "sft", self.step_idx)
        metrics = algorithms.reduce_metrics([m for o in outs for m in o["algo"]])
        metrics.update({"sft/grad_norm": outs[0]["actor/grad_norm"], "sft/lr": outs[0]["actor/lr"],
                        "sft/rows": float(len(batch)), "sft/tokens": float(batch.loss_mask.sum()),
                        "sft/epoch": float(self.epoch), "timing_s/step": time.perf_counter() - t0})
        return metrics

    def evaluate(self) -> dict[str, float]:
        from rltrain.workers.sharding import shard_for_ranks

        rows = to_rows(self.test, self.pad_id, self.cfg.train.max_length, False)
        outs = self.ranks.call_each("eval_loss", [(rows.index(s),) for s in shard_for_ranks(len(rows), len(self.ranks))])
        nll, n = sum(o[0] for o in outs), sum(o[1] for o in outs)
        return {"eval/loss": nll / max(n, 1.0), "eval/tokens": n}

    # ----- checkpoints ------------------------------------------------------------------------
    def save(self) -> Path:
        from rltrain.driver.recovery import checkpoint

        state = {"step": self.step_idx, "epoch": self.epoch, "cursor": self.cursor, "rng": checkpoint.rng_state()}
        return checkpoint.save(self.run_dir / "checkpoints", self.step_idx, {"learner": self.ranks}, state,
                               self.cfg.train.keep_checkpoints)

    def restore(self, ckpt: Path) -> None:
        from rltrain.driver.recovery import checkpoint

        state = checkpoint.load(ckpt, {"learner": self.ranks})
        self.step_idx, self.epoch, self.cursor = state["step"], state["epoch"], state["cursor"]
        self.order = self._permutation(self.epoch)
        checkpoint.set_rng_state(state["rng"])

    # ----- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from rltrain.config import to_dict
        from rltrain.driver.reporting.report import write_run_report
        from rltrain.driver.reporting.tracking import Tracker

        tc, t0 = self.cfg.train, time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(to_dict(self.cfg), indent=1, default=str))
        if self.resume_from is not None:
            self.restore(self.resume_from)
            print(f"[rltrain] resumed from {self.resume_from} at step {self.step_idx}", flush=True)
        tracker = Tracker(self.cfg.logging, self.run_dir, self.run_dir.name, to_dict(self.cfg), total_steps=tc.steps)
        before = self.evaluate()
        if self.step_idx == 0:
            tracker.log(before, step=0)
        while self.step_idx < tc.steps:
            metrics = self.step()
            if tc.eval_every and self.step_idx % tc.eval_every == 0 and self.step_idx < tc.steps:
                metrics.update(self.evaluate())
            tracker.log(metrics, step=self.step_idx)
            if tc.save_every and self.step_idx % tc.save_every == 0:
                self.save()
        after = self.evaluate()
        tracker.log(after, step=self.step_idx)
        ckpt = self.save()
        export = self.run_dir / "model"
        self.ranks.call("export", str(export), self.model_path)
        tracker.finish()
        report = write_run_report(self.run_dir) if self.cfg.logging.report else None
        summary = {"steps": self.step_idx, "wall_s": time.perf_counter() - t0, "eval_loss_before": before["eval/loss"],
                   "eval_loss_after": after["eval/loss"], "train_examples": len(self.train),
                   "test_examples": len(self.test), "checkpoint": str(ckpt), "model": str(export),
                   "run_dir": str(self.run_dir), "metrics": str(self.run_dir / "metrics.jsonl"),
                   "report": str(report) if report else None, "wandb_run": tracker.wandb_dir}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"[rltrain] SFT done: {self.step_idx} steps; held-out loss {before['eval/loss']:.3f} -> "
              f"{after['eval/loss']:.3f}; model {export}", flush=True)
        return summary

    def close(self) -> None:
        self.ranks.kill()
