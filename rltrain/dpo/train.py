"""Preference optimisation (DPO, IPO, SimPO) on ranks of the policy learner.

The data path: load (or build) the preference pairs, split each side into prompt / completion tokens
once (rltrain/dpo/data.py), then per step draw `pairs_per_step` pairs (a permutation per epoch, fixed by
the seed), fetch the reference's summed completion log-probs of the pairs not seen before (the reference
is frozen, so each pair's are computed once and cached; SimPO starts no reference), shard the pairs over
the ranks with weights 1 / pairs, and take one optimizer step. Held-out pairs are evaluated before,
every `eval_every` steps and after, with the same loss code under no_grad (metrics prefixed `eval_`, as
TRL does). Checkpoints hold the learners' DeepSpeed state (weights, optimizer, lr schedule) and the
sampler's state and the reference cache, so a resumed run draws the same pairs and takes the same
steps. The export at `<run_dir>/model` is a plain HF directory (a `model.path` for launch/grpo.py).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from rltrain.config.dpo import DPOConfig
from rltrain.dpo.data import encode_pairs, pack_pairs, reference_rows, summed
from rltrain.dpo.losses import NEEDS_REFERENCE
from rltrain.driver.recovery import checkpoint
from rltrain.rm.train import _pairs, rank_shards
from rltrain.workers.deepspeed_role import stop_if_skipped


def run_paths(cfg: DPOConfig) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None); raises before anything starts when a run to
    resume has no checkpoint or a new run's directory is taken."""
    t = cfg.train
    if t.resume:
        run_dir = Path(t.resume)
        ckpt = checkpoint.latest(run_dir / "checkpoints")
        if ckpt is None:
            raise FileNotFoundError(f"--resume {t.resume}: no complete checkpoint under {run_dir}/checkpoints")
        return run_dir, ckpt
    run_dir = Path(t.output_dir) / (t.run_name or f"dpo-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"train.run_name: {run_dir} exists; resume it with --resume {run_dir} or pick another "
                              "train.run_name")
    return run_dir, None


def ray_init_kwargs(cfg: DPOConfig) -> dict[str, Any]:
    """A cluster's address (RAY_ADDRESS, as `ray job submit` sets it): plain `ray.init()`; else a local Ray."""
    if os.environ.get("RAY_ADDRESS"):
        return {}
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if cfg.train.num_cpus:
        kw["num_cpus"] = cfg.train.num_cpus
    return kw


def actor_options(ranks: int, with_reference: bool, resources: dict[str, float]) -> tuple[dict, dict]:
    """Ray options of (a learner rank, the reference): equal CPU shares; on a cluster with GPUs one GPU per
    rank, and one for the reference when there is one more (else the reference runs on CPU, kept from them)."""
    actors = ranks + int(with_reference)
    share = math.floor(100 * min(1.0, resources.get("CPU", 1) / actors)) / 100
    learner, reference = {"num_cpus": share}, {"num_cpus": share}
    gpus = resources.get("GPU", 0)
    if gpus:
        if gpus < ranks:
            raise ValueError(f"learner.num_ranks={ranks} needs a GPU per rank; the cluster has {gpus:g}")
        learner["num_gpus"] = 1
        if gpus >= actors:
            reference["num_gpus"] = 1
        else:
            reference["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
    return learner, reference


class DPOTrainer:
    """Ranks of `DPOLearner` (and a `Reference` unless SimPO) on Ray; `run()` trains, evaluates, exports."""

    def __init__(self, cfg: DPOConfig) -> None:
        import ray
        import yaml
        from transformers import AutoTokenizer

        from rltrain.config.loader import to_dict
        from rltrain.toy.warm_start import ensure_default_model

        self.cfg = cfg
        self.run_dir, resume_from = run_paths(cfg)
        self.model_path = cfg.model_path or str(ensure_default_model())
        if not (Path(self.model_path) / "config.json").is_file():
            raise FileNotFoundError(f"model_path={self.model_path}: not a model directory (no config.json)")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        train, test = _pairs(cfg)
        self.train, cut_train = encode_pairs(self.tokenizer, train, cfg.train.max_length, "train")
        self.test, cut_test = encode_pairs(self.tokenizer, test, cfg.train.max_length, "test")
        if cut_train or cut_test:
            print(f"[rltrain] dpo: {cut_train} train and {cut_test} held-out sides were longer than "
                  f"train.max_length={cfg.train.max_length} tokens and were cut", flush=True)
        self.ref_train = torch.full((len(self.train), 2), float("nan"))
        self.ref_test = torch.full((len(self.test), 2), float("nan"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        saved = to_dict(cfg)
        saved["train"]["resume"] = None
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
        if not ray.is_initialized():
            ray.init(**ray_init_kwargs(cfg))
        self._start_actors(ray)
        self.gen = torch.Generator().manual_seed(cfg.train.seed)
        self.order, self.cursor, self.step_idx = torch.randperm(len(self.train), generator=self.gen), 0, 0
        self.eval_before: dict[str, float] | None = None
        wandb_id = self.restore(resume_from) if resume_from else None
        from rltrain.config.schema import LoggingConfig
        from rltrain.driver.reporting.tracking import Tracker

        lc = cfg.logging
        self.tracker = Tracker(LoggingConfig(wandb=lc.wandb, wandb_project=lc.wandb_project, wandb_mode=lc.wandb_mode,
                                             wandb_group=lc.wandb_group, console=False, report=False),
                               self.run_dir, self.run_dir.name, to_dict(cfg), wandb_id, total_steps=cfg.train.steps)

    def _start_actors(self, ray) -> None:
        from rltrain.workers.deepspeed_role import RankSpec
        from rltrain.workers.dpo_learner import DPOLearner
        from rltrain.workers.group import RankGroup
        from rltrain.workers.net import free_port
        from rltrain.workers.reference import Reference

        cfg, n = self.cfg, self.cfg.learner.num_ranks
        with_ref = NEEDS_REFERENCE[cfg.dpo.loss]
        learner_opts, ref_opts = actor_options(n, with_ref, ray.cluster_resources())
        master = ("127.0.0.1", free_port())
        self.ranks = RankGroup([ray.remote(DPOLearner).options(**learner_opts).remote(
            RankSpec(model_path=self.model_path, cfg=cfg.learner, rank=r, world_size=n, master=master,
                     dtype=cfg.dtype, seed=cfg.train.seed, gradient_checkpointing=cfg.gradient_checkpointing),
            dpo=cfg.dpo.model_dump()) for r in range(n)])
        self.reference = RankGroup([ray.remote(Reference).options(**ref_opts).remote(
            model_path=cfg.dpo.reference_path or self.model_path, temperature=1.0,
            micro_batch_size=2 * cfg.learner.micro_batch_size, threads=cfg.learner.threads,
            max_tokens_per_micro_batch=cfg.learner.max_tokens_per_micro_batch, dtype=cfg.dtype,
            attn_implementation=cfg.learner.attn_implementation, share_prompts=cfg.learner.share_prompts)]) \
            if with_ref else None
        self.ranks.call("ping")

    # ----- data -----------------------------------------------------------------------------
    def _next_pairs(self) -> list[int]:
        k, picked = self.cfg.train.pairs_per_step, []
        while len(picked) < k:
            if self.cursor >= len(self.order):
                self.order, self.cursor = torch.randperm(len(self.train), generator=self.gen), 0
            take = self.order[self.cursor:self.cursor + k - len(picked)].tolist()
            picked += take
            self.cursor += len(take)
        return picked

    def _reference_logps(self, encoded: list, cache: torch.Tensor, idx: list[int]) -> torch.Tensor | None:
        """The reference's (N, 2) summed completion log-probs of pairs `idx`, computed for the pairs not yet
        in `cache` (one reference call) and kept there; None without a reference (SimPO)."""
        if self.reference is None:
            return None
        missing = sorted({i for i in idx if math.isnan(float(cache[i, 0]))})
        if missing:
            batch = pack_pairs(encoded, missing, None, torch.zeros(len(missing)), self.pad_id)
            logp = self.reference.call("compute_logprobs", reference_rows(batch, self.pad_id))[0]
            cache[missing] = summed(logp, batch)
        return cache[idx]

    def _batch(self, encoded: list, cache: torch.Tensor, idx: list[int]):
        ref = self._reference_logps(encoded, cache, idx)
        return pack_pairs(encoded, idx, ref, torch.full((len(idx),), 1.0 / len(idx)), self.pad_id)

    # ----- steps ----------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """The loss's metrics on every held-out pair, prefixed `eval_`."""
        import algorithms

        batch = self._batch(self.test, self.ref_test, list(range(len(self.test))))
        outs = self.ranks.call_each("eval_pairs", rank_shards(batch, len(self.ranks), self.cfg.learner.micro_batch_size))
        return {f"eval_{k}": v for k, v in algorithms.reduce_metrics([m for o in outs for m in o]).items()}

    def step(self) -> dict[str, float]:
        import algorithms

        t0 = time.perf_counter()
        idx = self._next_pairs()
        batch = self._batch(self.train, self.ref_train, idx)
        t_ref = time.perf_counter() - t0
        outs = self.ranks.call_each("train_minibatch", rank_shards(batch, len(self.ranks), self.cfg.learner.micro_batch_size))
        stop_if_skipped(outs, "dpo", self.step_idx + 1)
        m = algorithms.reduce_metrics([x for o in outs for x in o["algo"]])
        m.update({"grad_norm": outs[0]["actor/grad_norm"], "learning_rate": outs[0]["actor/lr"],
                  "timing_s/reference": t_ref, "timing_s/step": time.perf_counter() - t0})
        self.step_idx += 1
        return m

    def run(self) -> dict[str, Any]:
        t_start, cfg = time.perf_counter(), self.cfg
        if self.eval_before is None:
            self.eval_before = self.evaluate()
            self.tracker.log(self.eval_before, step=0)
        self._print_eval("before training", self.eval_before)
        while self.step_idx < cfg.train.steps:
            m = self.step()
            every, last = cfg.train.eval_every, self.step_idx == cfg.train.steps
            if every and self.step_idx % every == 0 and not last:
                m.update(self.evaluate())
                self.last_eval = (self.step_idx, m["eval_rewards/accuracies"])
            self.tracker.log(m, step=self.step_idx)
            self._print_step(m, t_start)
            if cfg.train.save_every and self.step_idx % cfg.train.save_every == 0 and not last:
                self.save()
        after = self.evaluate()
        self.tracker.log(after, step=self.step_idx)
        self._print_eval(f"after {self.step_idx} steps", after)
        ckpt = self.save()
        export = self.run_dir / "model"
        self.ranks.call("export", str(export), self.model_path)
        self.tracker.finish()
        summary = {"steps": self.step_idx, "wall_s": time.perf_counter() - t_start, "loss": cfg.dpo.loss,
                   "eval_before": self.eval_before, "eval_after": after, "model": str(export), "checkpoint": str(ckpt),
                   "base_model": self.model_path, "train_pairs": len(self.train), "test_pairs": len(self.test),
                   "run_dir": str(self.run_dir), "metrics": str(self.run_dir / "metrics.jsonl"),
                   "wandb_run": self.tracker.wandb_dir}
        path = self.run_dir / "summary.json"
        path.write_text(json.dumps(summary, indent=2))
        summary["summary_path"] = str(path)
        return summary

    # ----- console --------------------------------------------------------------------------
    last_eval: tuple[int, float] | None = None
    _first_step: tuple[int, float] | None = None

    def _print_eval(self, when: str, m: dict[str, float]) -> None:
        if self.cfg.logging.console:
            print(f"[rltrain] dpo held-out {when}: loss {m['eval_loss']:.4f}, rewards/accuracies "
                  f"{m['eval_rewards/accuracies']:.3f}, rewards/margins {m['eval_rewards/margins']:.4f} "
                  f"({len(self.test)} pairs)", flush=True)

    def _print_step(self, m: dict[str, float], t_start: float) -> None:
        if not self.cfg.logging.console:
            return
        from rltrain.driver.reporting.progress import format_duration

        now, total = time.perf_counter(), self.cfg.train.steps
        if self._first_step is None:
            self._first_step = (self.step_idx, now - m["timing_s/step"])
        done = self.step_idx - self._first_step[0] + 1
        eta = (now - self._first_step[1]) / done * (total - self.step_idx)
        held = "" if self.last_eval is None else f" | held-out acc {self.last_eval[1]:.3f} (step {self.last_eval[0]})"
        print(f"[rltrain] dpo step {self.step_idx}/{total} ({100 * self.step_idx / total:.0f}%, ETA "
              f"{format_duration(eta)}): loss={m['loss']:.4f} acc={m['rewards/accuracies']:.3f} "
              f"margin={m['rewards/margins']:.4f} chosen={m['rewards/chosen']:.4f} rejected={m['rewards/rejected']:.4f}"
              f"{held} | {m['timing_s/step']:.2f} s/step", flush=True)

    # ----- checkpoints ----------------------------------------------------------------------
    def save(self) -> Path:
        state = {"step": self.step_idx, "generator": self.gen.get_state(), "order": self.order, "cursor": self.cursor,
                 "ref_train": self.ref_train, "ref_test": self.ref_test, "rng": checkpoint.rng_state(),
                 "eval_before": self.eval_before, "last_eval": self.last_eval,
                 "wandb_id": getattr(getattr(self, "tracker", None), "wandb_id", None)}
        return checkpoint.save(self.run_dir / "checkpoints", self.step_idx, {"learner": self.ranks}, state,
                               self.cfg.train.keep_checkpoints)

    def restore(self, ckpt: Path) -> str | None:
        """Load a checkpoint into the ranks and this driver; returns the W&B run id to continue."""
        state = checkpoint.load(ckpt, {"learner": self.ranks})
        if state["ref_train"].shape != self.ref_train.shape or state["ref_test"].shape != self.ref_test.shape:
            raise ValueError(f"{ckpt}: written for {len(state['ref_train'])} train / {len(state['ref_test'])} held-out "
                             f"pairs, the data now has {len(self.train)} / {len(self.test)}: not the same run's data")
        self.step_idx, self.cursor, self.order = state["step"], state["cursor"], state["order"]
        self.gen.set_state(state["generator"])
        self.ref_train, self.ref_test = state["ref_train"], state["ref_test"]
        self.eval_before, self.last_eval = state["eval_before"], state["last_eval"]
        checkpoint.set_rng_state(state["rng"])
        print(f"[rltrain] dpo: resumed from {ckpt} at step {self.step_idx}", flush=True)
        return state["wandb_id"]

    def close(self) -> None:
        self.ranks.kill()
        if self.reference is not None:
            self.reference.kill()
