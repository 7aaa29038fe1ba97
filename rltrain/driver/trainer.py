"""The trainer loop (the driver). One step follows the data path of DESIGN.md:

    prompts -> rollout workers (n samples, token ids + sampling log-probs) -> rewards
    -> data policy (refill) -> learner old log-probs / entropy, reference log-probs
    -> algorithm.prepare (advantages, token selection, global loss weights)
    -> learners: micro-batched backward + optimizer step per mini-batch
    -> bucketed weight sync learner -> engines (versioned) -> metrics, checkpoint

`trainer.schedule: one_step_off` changes only when generation starts: step t+1's first round is
submitted right after step t's batch is collected, so the engines generate it (with the weights
of sync t-1) while the learners update; the sync queues behind it on each worker. A batch made by
older weights than the learner's is trained with its behaviour log-probs as pi_old, so the clipped
ratio corrects for the lag.

Nothing here branches on an algorithm's name: the algorithm declares what it needs
(`algo.requires`) and the loop provides it.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ray
import torch

import algorithms
from algorithms import RolloutBatch
from rltrain.driver import checkpoint
from rltrain.workers.placement import start_actors, stop_actors
from rltrain.config import Config, to_dict
from rltrain.engines.base import SamplingConfig
from rltrain.driver.evaluation import evaluate
from rltrain.driver.rewards import RewardRunner
from rltrain.driver.rollout import PendingRollout, Record, Rollout, rollout_metrics, to_batch
from rltrain.driver.run_setup import RunFiles, prepare_run
from rltrain.workers.sharding import minibatch_slices, pad_shard, shard_for_ranks
from rltrain.driver.tracking import Tracker

log = logging.getLogger("rltrain")


class Trainer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.algo = algorithms.build(cfg.algorithm.spec())
        self.files: RunFiles = prepare_run(cfg)
        self.tokenizer = self.files.tokenizer
        self.sampler = self.files.sampler
        self.step_idx, self.version = 0, 0
        self.timings: dict[str, float] = {}
        self._prefetched: PendingRollout | None = None  # one_step_off: next step's first round, in flight
        self._sampler_before_prefetch: dict | None = None
        if not ray.is_initialized():
            ray.init(**_ray_init_kwargs(cfg))
        self.actors = start_actors(cfg, self.files.model_path, "ref_logp" in self.algo.requires, cfg.trainer.steps)
        self.rollout = Rollout(self.actors.workers, self.tokenizer,
                               RewardRunner(cfg.reward, cfg.data.answer_key))
        wandb_id = self._maybe_resume()
        self.tracker = Tracker(cfg.logging, self.files.run_dir, self.files.run_name, to_dict(cfg), wandb_id)

    def set_algorithm(self, spec: dict) -> None:
        """Swap the algorithm on live actors (tests and sweeps reuse one set of actors)."""
        algo = algorithms.build(spec)
        if "ref_logp" in algo.requires and self.actors.reference is None:
            raise ValueError("algorithm needs reference log-probs but this run started without a reference actor")
        ray.get([lr.set_algorithm.remote(spec) for lr in self.actors.learners])
        self.algo = algo

    # ----- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        before = self.evaluate() if self.step_idx == 0 or not self.files.summary_before else self.files.summary_before
        self.files.summary_before = before
        if self.step_idx == 0:
            self.tracker.log(before, step=0)
        while self.step_idx < self.cfg.trainer.steps:
            if self.cfg.trainer.max_wall_s and time.perf_counter() - t_start > self.cfg.trainer.max_wall_s:
                print(f"[rltrain] trainer.max_wall_s={self.cfg.trainer.max_wall_s} reached; stopping", flush=True)
                break
            metrics = self.step()
            if self.cfg.eval.every and self.step_idx % self.cfg.eval.every == 0:
                metrics.update(self.evaluate())
            self.tracker.log(metrics, step=self.step_idx)
            if self.cfg.trainer.save_every and self.step_idx % self.cfg.trainer.save_every == 0:
                self.save()
        after = self.evaluate()
        self.tracker.log(after, step=self.step_idx)
        ckpt = self.save()
        export_dir = self.files.run_dir / "model"
        ray.get([lr.export.remote(str(export_dir), self.files.model_path) for lr in self.actors.learners])
        return self._summary(before, after, ckpt, export_dir, time.perf_counter() - t_start)

    def step(self) -> dict[str, float]:
        self.step_idx += 1
        self.timings = {}
        with self._timer("step"):
            with self._timer("gen"):
                batch, metrics = self.collect_batch()
            self._prefetch_next()
            with self._timer("logprob"):
                metrics.update(self.compute_logprobs(batch))
            batch, algo_metrics = self.algo.prepare(batch)
            metrics.update(algo_metrics)
            with self._timer("update"):
                metrics.update(self.update(batch))
            with self._timer("weight_sync_total"):
                metrics.update(self.sync_weights())
        metrics.update({f"timing_s/{k}": v for k, v in self.timings.items()})
        n_tokens = float(batch.response_mask.sum() + batch.extra["attention_mask"].sum())
        metrics["perf/tokens_per_s"] = n_tokens / self.timings["step"]
        metrics["weights/version"] = float(self.version)
        return metrics

    # ----- phases ---------------------------------------------------------------------------
    def _sampling(self) -> SamplingConfig:
        rc = self.cfg.rollout
        return SamplingConfig(n=rc.n_samples, max_new_tokens=rc.max_new_tokens, temperature=rc.temperature,
                              top_p=rc.top_p)

    def _prefetch_next(self) -> None:
        """one_step_off: submit the next step's first generation round now (it runs during the update)."""
        if self.cfg.trainer.schedule != "one_step_off" or self.step_idx >= self.cfg.trainer.steps:
            return
        self._sampler_before_prefetch = self.sampler.state_dict()
        rows = self.sampler.take(self.cfg.rollout.prompts_per_step)
        self._prefetched = self.rollout.submit(rows, self._sampling())

    def collect_batch(self) -> tuple[RolloutBatch, dict[str, float]]:
        """Generate and score; apply the data policy and refill it up to `prompts_per_step` groups."""
        rc = self.cfg.rollout
        kept: list[Record] = []
        seen: list[Record] = []
        need, group_base = rc.prompts_per_step, 0
        for attempt in range(1 + rc.max_refill_rounds):
            pending, self._prefetched = self._prefetched, None
            if pending is None:
                rows = self.sampler.take(need if attempt else rc.prompts_per_step)
                pending = self.rollout.submit(rows, self._sampling(), first_group=group_base)
            with self._timer("rollout", accumulate=True):
                records = pending.result()
            with self._timer("reward", accumulate=True):
                self.rollout.score(records)
            group_base += len(pending.rows)
            seen += records
            scored = [r for r in records if r.reward is not None]
            if scored:
                keep = self.algo.keep(to_batch(scored, self.files.pad_id, self.step_idx))
                kept += [r for r, k in zip(scored, keep.tolist()) if k]
            have = len({r.group for r in kept})
            need = rc.prompts_per_step - have
            if need <= 0:
                break
        else:
            print(f"[rltrain] step {self.step_idx}: data policy kept {have} of {rc.prompts_per_step} prompt groups "
                  f"after {1 + rc.max_refill_rounds} generation rounds (rollout.max_refill_rounds); the data is "
                  f"too hard or too easy for this filter; training on the {have} groups kept", flush=True)
        groups = list(dict.fromkeys(r.group for r in kept))[: rc.prompts_per_step]
        kept = [r for r in kept if r.group in set(groups)]
        metrics = rollout_metrics(seen, rc.max_new_tokens)
        metrics["rollout/gen_rounds"] = float(attempt + 1)
        metrics["rollout/kept_groups"] = float(len(groups))
        if not kept:
            raise RuntimeError(f"step {self.step_idx}: no sample survived scoring and the data policy")
        oldest = min(r.version for r in kept)
        metrics["rollout/weight_version"] = float(oldest)
        metrics["rollout/staleness"] = float(self.version - oldest)
        batch = to_batch(kept, self.files.pad_id, self.step_idx)
        if oldest < self.version:  # off-policy: the ratio is taken against the policy that sampled
            batch.old_logp = batch.sampling_logp.clone()
        return batch, metrics

    def needs_old_logprob_pass(self) -> bool:
        """A separate old-log-prob pass is needed unless the batch gets exactly one optimizer step
        and nothing before the update reads old log-probs or entropies (then the learner takes
        them from its own forward: pi_old == pi_theta)."""
        lc = self.cfg.learner
        return (lc.epochs * lc.mini_batches > 1 or self.cfg.learner.force_old_logprob_pass
                or bool({"old_entropy", "cur_logp_prepass"} & self.algo.requires))

    def compute_logprobs(self, batch: RolloutBatch) -> dict[str, float]:
        """Old log-probs and entropy from the learners (sharded by rank); reference log-probs."""
        out: dict[str, float] = {}
        if self.actors.reference is not None:
            batch.ref_logp = ray.get(self.actors.reference.compute_logprobs.remote(batch))
        if not self.needs_old_logprob_pass():
            return out
        shards = shard_for_ranks(len(batch), len(self.actors.learners))
        outs = ray.get([lr.compute_logprobs.remote(batch.index(idx), True)
                        for lr, idx in zip(self.actors.learners, shards)])
        current = torch.cat([o[0] for o in outs])
        batch.entropy = torch.cat([o[1] for o in outs])
        if batch.old_logp is None:  # on-policy; an off-policy batch keeps its behaviour log-probs
            batch.old_logp = current
        m = batch.response_mask
        denom = m.sum().clamp(min=1)
        out = {"rollout/logprob_diff": float(((batch.sampling_logp - current).abs() * m).sum() / denom),
               "rollout/entropy": float((batch.entropy * m).sum() / denom)}
        if batch.ref_logp is not None:
            out["rollout/ref_kl_k1"] = float(((current - batch.ref_logp) * m).sum() / denom)
        return out

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """One optimizer step per mini-batch per epoch; every rank gets the same micro-step count."""
        lc = self.cfg.learner
        metrics: list[dict[str, float]] = []
        for _ in range(lc.epochs):
            for idx in minibatch_slices(batch, lc.mini_batches, self.algo.group_aligned_microbatches):
                mb = batch.index(idx)
                mb.loss_weights = mb.loss_weights * lc.mini_batches  # each step sees a full-scale loss
                if "cur_logp_prepass" in self.algo.requires:
                    mb = self._with_current_logp(mb)
                mb = self.algo.prepare_minibatch(mb)
                step_metrics = update_minibatch(self.actors.learners, mb, lc.micro_batch_size,
                                                self.algo.group_aligned_microbatches)
                metrics.append(step_metrics)
        return {k: sum(m.get(k, 0.0) for m in metrics) / len(metrics) for k in metrics[-1]}

    def _with_current_logp(self, mb: RolloutBatch) -> RolloutBatch:
        shards = shard_for_ranks(len(mb), len(self.actors.learners))
        outs = ray.get([lr.compute_logprobs.remote(mb.index(idx), False)
                        for lr, idx in zip(self.actors.learners, shards)])
        mb.extra["cur_logp"] = torch.cat([o[0] for o in outs])
        return mb

    def sync_weights(self) -> dict[str, float]:
        self.version += 1
        bucket = int(self.cfg.sync.bucket_mb * 2**20)
        outs = ray.get([lr.sync_weights.remote(self.actors.workers, self.version, bucket)
                        for lr in self.actors.learners])
        return outs[0]

    def evaluate(self) -> dict[str, float]:
        ec = self.cfg.eval
        with self._timer("eval"):
            return evaluate(self.rollout, self.files.test_rows[: ec.max_prompts], ec.n_samples, ec.temperature,
                            self.cfg.rollout.max_new_tokens, ec.correct_threshold, seed=self.cfg.trainer.seed + 4242)

    # ----- checkpoints ----------------------------------------------------------------------
    def save(self) -> Path:
        # a prefetched round is not in the checkpoint: a resumed run takes its rows again
        sampler = self._sampler_before_prefetch if self._prefetched is not None else self.sampler.state_dict()
        state = {"step": self.step_idx, "version": self.version, "sampler": sampler,
                 "algorithm": self.algo.state_dict(), "rng": checkpoint.rng_state(),
                 "wandb_id": getattr(self, "tracker", None) and self.tracker.wandb_id,
                 "eval_before": self.files.summary_before}
        path = checkpoint.save(self.files.run_dir / "checkpoints", self.step_idx, self.actors.learners, state,
                               self.cfg.trainer.keep_checkpoints)
        return path

    def _maybe_resume(self) -> str | None:
        if not self.files.resume_from:
            return None
        state = checkpoint.load(self.files.resume_from, self.actors.learners)
        self.step_idx, self.version = state["step"], state["version"]
        self.sampler.load_state_dict(state["sampler"])
        self.algo.load_state_dict(state["algorithm"])
        checkpoint.set_rng_state(state["rng"])
        self.files.summary_before = state.get("eval_before")
        bucket = int(self.cfg.sync.bucket_mb * 2**20)
        ray.get([lr.sync_weights.remote(self.actors.workers, self.version, bucket) for lr in self.actors.learners])
        print(f"[rltrain] resumed from {self.files.resume_from} at step {self.step_idx}", flush=True)
        return state.get("wandb_id")

    def _summary(self, before: dict, after: dict, ckpt: Path, export_dir: Path, wall_s: float) -> dict[str, Any]:
        summary = {
            "steps": self.step_idx, "wall_s": wall_s, "eval_before": before, "eval_after": after,
            "pass@1_before": before.get("eval/pass@1"), "pass@1_after": after.get("eval/pass@1"),
            "run_dir": str(self.files.run_dir), "checkpoint": str(ckpt), "exported_model": str(export_dir),
            "metrics": str(self.files.run_dir / "metrics.jsonl"), "wandb_run": self.tracker.wandb_dir,
            "model": self.files.model_path, "algorithm": self.cfg.algorithm.spec(),
        }
        path = self.files.run_dir / "summary.json"
        path.write_text(json.dumps(summary, indent=2))
        summary["summary_path"] = str(path)
        return summary

    def close(self) -> None:
        self.tracker.finish()
        stop_actors(self.actors)

    @contextmanager
    def _timer(self, name: str, accumulate: bool = False) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings[name] = self.timings.get(name, 0.0) + dt if accumulate else dt


def update_minibatch(learners: list, mb: RolloutBatch, micro_batch_size: int, group_aligned: bool) -> dict[str, float]:
    """One optimizer step on `mb`: shard rows over the learner ranks, pad every shard to the same
    micro-step count (zero-weight rows), train, and reduce the algorithm metrics exactly."""
    shards = shard_for_ranks(len(mb), len(learners), mb.group_ids if group_aligned else None)
    n_micro = max(1, -(-max(len(s) for s in shards) // micro_batch_size))
    ranks = ray.get([lr.train_minibatch.remote(pad_shard(mb, s, n_micro), n_micro) for lr, s in zip(learners, shards)])
    out = algorithms.reduce_metrics([m for r in ranks for m in r["algo"]])
    out["actor/grad_norm"] = ranks[0]["actor/grad_norm"]
    out["actor/lr"] = ranks[0]["actor/lr"]
    out["timing_s/update_rank_max"] = max(r["timing_s/update_rank"] for r in ranks)
    return out


def _ray_init_kwargs(cfg: Config) -> dict[str, Any]:
    import os

    if os.environ.get("RAY_ADDRESS"):
        return {}
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if cfg.trainer.num_cpus:
        kw["num_cpus"] = cfg.trainer.num_cpus
    return kw
