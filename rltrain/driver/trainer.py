"""The trainer loop (the driver). One step follows the data path of DESIGN.md:

    schedule.next_batch: prompts -> rollout workers (n samples, token ids + sampling log-probs)
        -> rewards -> data policy (refill)                                    [rltrain.driver.flow.collector]
    -> log-prob passes on demand: learners' old log-probs / entropy, reference log-probs
    -> algorithm driver part: advantages, token selection, global loss weights       [algorithms]
    -> learners: per mini-batch (driver hook, then) micro-batched backward + optimizer step
    -> bucketed weight sync learner -> engines (versioned) -> metrics, checkpoint

Nothing here branches on an algorithm's, engine's or schedule's name: the algorithm declares the
batch fields it reads (the loop computes those on demand), the engine sits behind the rollout
workers, and the schedule object decides which batch comes next.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ray
import torch

import algorithms
from algorithms import BatchField, RolloutBatch, StepPlan
from rltrain.config import Config, to_dict
from rltrain.config import engine_dtype
from rltrain.driver.critic import critic_values, policy_frozen, update_critic
from rltrain.driver.flow.collector import BatchCollector
from rltrain.driver.flow.evaluation import evaluate
from rltrain.driver.flow.gt_probs import gt_probs_from_logprobs, teacher_queries
from rltrain.driver.flow.multiturn import MultiTurnRollout
from rltrain.driver.flow.rewards import RewardRunner
from rltrain.driver.flow.rollout import Rollout
from rltrain.driver.flow.schedules import schedule_class
from rltrain.driver.recovery import checkpoint, restart
from rltrain.driver.recovery.preemption import StopRequests
from rltrain.driver.reporting.report import write_run_report
from rltrain.driver.reporting.tracking import Tracker
from rltrain.driver.run_setup import RunFiles, prepare_run
from rltrain.driver.update import update_minibatch
from rltrain.engines.base import SamplingConfig
from rltrain.workers.group import RankGroup
from rltrain.workers.actor_set import ActorSet
from rltrain.workers.placement import cluster_of_ray, describe_placement
from rltrain.workers.planner import plan
from rltrain.workers.sync_strategies import PlannedSync
from rltrain.workers.sharding import minibatch_slices, shard_for_ranks


class Trainer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.algo = algorithms.build_driver(cfg.algorithm.spec())
        self.files: RunFiles = prepare_run(cfg)
        self.tokenizer, self.sampler = self.files.tokenizer, self.files.sampler
        self.step_idx, self.version = 0, 0
        self.reference_step: int | None = None  # the step whose policy the reference holds (None: the initial)
        self.timings: dict[str, float] = {}
        schedule_cls = schedule_class(cfg.trainer.schedule)  # its combinations were checked when cfg was loaded
        if not ray.is_initialized():
            ray.init(**_ray_init_kwargs(cfg))
        self.plan = plan(cfg, cluster_of_ray(), self.algo.needs(BatchField.REF_LOGP), self.algo.needs(BatchField.VALUES))
        self.actors = ActorSet(cfg, self.plan, self.files.model_path, schedule_cls.overlaps_generation(cfg))
        if len(ray.nodes()) > 1:
            print("[rltrain] placement: " + "; ".join(describe_placement(self.actors)), flush=True)
        self.sync = PlannedSync(self.plan, cfg.sync.verify)
        self.sync.connect(self.actors, cfg.sync.timeout_s)
        if cfg.env.name is not None:  # episodes with an environment, scored by it
            self.rollout = self.eval_rollout = MultiTurnRollout(self.actors.workers, self.tokenizer, cfg.env,
                                                                cfg.rollout.max_new_tokens)
        else:
            self.rollout = Rollout(self.actors.workers, self.tokenizer, RewardRunner(cfg.reward, cfg.data.answer_key))
            self.eval_rollout = self.rollout if cfg.eval.reward is None else Rollout(
                self.actors.workers, self.tokenizer, RewardRunner(cfg.eval.reward, cfg.data.answer_key))
        self.worker_restarts = self.actor_restarts = self.skipped_steps = self.skipped_in_a_row = 0
        for rollout in {id(r): r for r in (self.rollout, self.eval_rollout)}.values():
            rollout.recover = self._worker_lost
        rc = cfg.rollout
        sampling = SamplingConfig(n=rc.n_samples, max_new_tokens=rc.max_new_tokens, temperature=rc.temperature,
                                  top_p=rc.top_p)
        collector = BatchCollector(self.rollout, self.algo, sampling, rc.prompts_per_step, rc.max_refill_rounds,
                                   self.files.pad_id, self._timer, rc.partial_tokens, rc.refill_oversample)
        self.schedule = schedule_cls(collector, self.sampler, cfg)
        wandb_id = self._maybe_resume()
        self.tracker = Tracker(cfg.logging, self.files.run_dir, self.files.run_name, to_dict(cfg), wandb_id,
                               total_steps=cfg.trainer.steps)

    def set_algorithm(self, spec: dict) -> None:
        """Swap the algorithm on live actors (tests and sweeps reuse one set of actors)."""
        algo = algorithms.build_driver(spec)
        if algo.needs(BatchField.REF_LOGP) and self.actors.reference is None:
            raise ValueError("algorithm needs reference log-probs but this run started without a reference actor")
        self.actors.set_algorithm(spec)  # kept by the actor set: a restart brings it back
        self.algo = self.schedule.collector.algo = algo

    # ----- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        before = self.evaluate() if self.step_idx == 0 or not self.files.summary_before else self.files.summary_before
        self.files.summary_before = before
        if self.step_idx == 0:
            self.tracker.log(before, step=0)
        with StopRequests() as stop:
            while self.step_idx < self.cfg.trainer.steps and stop.signal_name is None:
                if self.cfg.trainer.max_wall_s and time.perf_counter() - t_start > self.cfg.trainer.max_wall_s:
                    print(f"[rltrain] trainer.max_wall_s={self.cfg.trainer.max_wall_s} reached; stopping", flush=True)
                    break
                self._run_step_or_recover()
            if stop.signal_name is not None:  # pre-empted: a checkpoint, the way back, nothing else
                ckpt = self.save()
                print(f"[rltrain] stopped by {stop.signal_name} after step {self.step_idx}; checkpoint {ckpt}; resume "
                      f"with --resume {self.files.run_dir} (trainer.resume={self.files.run_dir})", flush=True)
                return self._summary(before, {}, ckpt, None, time.perf_counter() - t_start, None,
                                     stopped_by=stop.signal_name)
        after = self.evaluate()
        self.tracker.log(after, step=self.step_idx)
        ckpt = self.save()
        export_dir = self.files.run_dir / "model"
        self.actors.learners.call("export", str(export_dir), self.files.model_path)
        report = write_run_report(self.files.run_dir) if self.cfg.logging.report else None
        return self._summary(before, after, ckpt, export_dir, time.perf_counter() - t_start, report)

    def _run_step_or_recover(self) -> None:
        """`_run_step`; when a learner rank or the reference has died, every actor is started anew from
        the last complete checkpoint (at most `trainer.max_restarts` times) and the run goes on."""
        try:
            self._run_step()
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            if not self.actors.core_actor_died():
                raise
            self.actor_restarts += 1
            if self.actor_restarts > self.cfg.trainer.max_restarts:
                raise RuntimeError(f"a learner rank or the reference died ({self.actor_restarts} times, trainer."
                                   f"max_restarts={self.cfg.trainer.max_restarts}); resume from the last complete "
                                   f"checkpoint with --resume {self.files.run_dir}") from e
            restart.restart_actors(self)

    def _run_step(self) -> None:
        """One step of `run`: the step, an evaluation when due, the log line, a checkpoint when due."""
        metrics = self.step()
        if self.cfg.eval.every and self.step_idx % self.cfg.eval.every == 0 and self.step_idx < self.cfg.trainer.steps:
            metrics.update(self.evaluate())  # (the last step's evaluation is the final one)
        self.tracker.log(metrics, step=self.step_idx)
        if self.cfg.trainer.save_every and self.step_idx % self.cfg.trainer.save_every == 0:
            self.save()

    def step(self) -> dict[str, float]:
        self.step_idx += 1
        self.timings = {}
        self.apply_plan(self.algo.plan(self.step_idx))
        with self._timer("step"):
            with self._timer("gen"):
                batch, metrics = self.collect_batch()
            with self._timer("logprob"):
                metrics.update(self.compute_logprobs(batch))
            batch, algo_metrics = self.algo.prepare(batch)
            metrics.update(algo_metrics)
            metrics.update(self.schedule.observe(batch))
            with self._timer("update"):
                if not policy_frozen(self.cfg.critic, self.actors.critic, self.step_idx):
                    metrics.update(self.update(batch))
                if self.actors.critic is not None:
                    metrics.update(update_critic(self.actors.critic, batch, self.cfg.critic))
            restart.count_skipped(self, metrics.pop("faults/skipped", 0.0) + metrics.pop("faults/critic_skipped", 0.0))
            with self._timer("weight_sync_total"):
                metrics.update(self.sync_weights())
        metrics.update({f"timing_s/{k}": v for k, v in self.timings.items()})
        metrics["perf/tokens_per_s"] = float(batch.attention_mask.sum()) / self.timings["step"]
        metrics["weights/version"] = float(self.version)
        metrics["faults/skipped_steps"] = float(self.skipped_steps)
        metrics["faults/worker_restarts"] = float(self.worker_restarts)
        metrics["faults/actor_restarts"] = float(self.actor_restarts)
        return metrics

    # ----- phases ---------------------------------------------------------------------------
    def apply_plan(self, plan: StepPlan) -> None:
        """What the algorithm asks of the runtime this step: stop running off-policy; reset the
        reference to the policy of a given step (exported once, at that step, to run_dir/reference)."""
        self.schedule.set_off_policy(plan.off_policy)
        step = plan.reference_from_step
        if step is None or step == self.reference_step or self.actors.reference is None:
            return
        path = self.files.run_dir / "reference"
        if step == self.step_idx:  # now: the current policy becomes the reference
            self.actors.learners.call("export", str(path), self.files.model_path)
        elif not path.exists():
            raise FileNotFoundError(f"the reference should be the policy of step {step}, but {path} is missing")
        self.actors.reference.call("load_model", str(path))
        self.reference_step = step
        print(f"[rltrain] step {self.step_idx}: the reference is now the policy of step {step}", flush=True)

    def collect_batch(self) -> tuple[RolloutBatch, dict[str, float]]:
        """The schedule's next batch (generated, scored, filtered by the data policy)."""
        return self.schedule.next_batch(self.step_idx, self.version)

    def needs_old_logprob_pass(self, batch: RolloutBatch) -> bool:
        """A separate old-log-prob pass is needed unless the batch gets exactly one optimizer step and
        nothing reads what only the pass can give: old log-probs or entropies before the update, or pi_k
        (`prox_logp`) of an off-policy batch, or the learner's pi_old in place of its behaviour log-probs.
        Otherwise the learner takes them from its own forward."""
        lc = self.cfg.learner
        off_policy_prox = batch.old_logp is not None and (self.algo.needs(BatchField.PROX_LOGP)
                                                          or self.algo.old_logp_from_learner)
        return (lc.epochs * lc.mini_batches * self.schedule.updates_per_batch > 1 or lc.force_old_logprob_pass
                or off_policy_prox or bool({BatchField.OLD_LOGP, BatchField.ENTROPY} & self.algo.driver_reads))

    def compute_logprobs(self, batch: RolloutBatch) -> dict[str, float]:
        """Reference log-probs, the critic's values; old log-probs and entropy from the learners (sharded by rank)."""
        out: dict[str, float] = {}
        if self.algo.needs(BatchField.GT_PROBS):
            batch.gt_probs = self.ground_truth_probs(batch)
        if self.actors.reference is not None and self.algo.needs(BatchField.REF_LOGP):
            batch.ref_logp = self.actors.reference.call("compute_logprobs", batch)[0]
        if self.actors.critic is not None:
            batch.values = critic_values(self.actors.critic, batch)
        if not self.needs_old_logprob_pass(batch):
            return out
        current, entropy, metrics = self._learner_logprobs(batch, with_entropy=True)
        batch.entropy, batch.prox_logp = entropy, current
        if batch.old_logp is None or self.algo.old_logp_from_learner:
            batch.old_logp = current  # an off-policy batch keeps its behaviour log-probs unless told otherwise
        out = algorithms.reduce_metrics(metrics)
        if batch.ref_logp is not None:
            m = batch.response_mask
            out["rollout/ref_kl_k1"] = float(((current - batch.ref_logp) * m).sum() / m.sum().clamp(min=1))
        return out

    def ground_truth_probs(self, batch: RolloutBatch) -> torch.Tensor:
        """IGPO's p_k for every row and turn, teacher-forced on the learners (rltrain/driver/flow/gt_probs.py)."""
        queries, where, n_turns = teacher_queries(batch)
        if queries is None:
            return torch.full((len(batch), n_turns), float("nan"))
        logp = self._learner_logprobs(queries, with_entropy=False)[0]
        return gt_probs_from_logprobs(logp, queries, where, len(batch), n_turns)

    def _learner_logprobs(self, batch: RolloutBatch, with_entropy: bool):
        shards = shard_for_ranks(len(batch), len(self.actors.learners))
        outs = self.actors.learners.call_each("compute_logprobs", [(batch.index(i), with_entropy) for i in shards])
        entropy = torch.cat([o["entropy"] for o in outs]) if with_entropy else None
        return torch.cat([o["logp"] for o in outs]), entropy, [o["metrics"] for o in outs]

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """One optimizer step per mini-batch per epoch; every rank gets the same micro-step count."""
        lc = self.cfg.learner
        aligned = self.algo.group_aligned_microbatches
        metrics: list[dict[str, float]] = []
        for _ in range(lc.epochs * self.schedule.updates_per_batch):
            for idx in minibatch_slices(batch, lc.mini_batches, aligned):
                mb = batch.index(idx)
                mb.loss_weights = mb.loss_weights * lc.mini_batches  # each step sees a full-scale loss
                if self.algo.needs(BatchField.CUR_LOGP):
                    mb.cur_logp = self._learner_logprobs(mb, with_entropy=False)[0]
                mb, hook_metrics = self.algo.prepare_minibatch(mb)
                step_metrics = update_minibatch(self.actors.learners, mb, lc.micro_batch_size, aligned,
                                                lc.max_tokens_per_micro_batch, lc.share_prompts)
                metrics.append({**hook_metrics, **step_metrics})
        return {k: sum(m.get(k, 0.0) for m in metrics) / len(metrics) for k in metrics[-1]}

    def sync_weights(self) -> dict[str, float]:
        self.version += 1
        return self._push_weights()

    def _push_weights(self) -> dict[str, Any]:
        """The learners' weights to every engine at the current version; `sync/*` metrics."""
        bucket = int(self.cfg.sync.bucket_mb * 2**20)
        try:
            out = self.sync.push(self.actors, self.version, bucket, engine_dtype(self.cfg))
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError):
            dead = self.actors.dead_rollout_workers()
            if not dead:
                raise
            for i in dead:  # fresh workers, then their groups anew and one push for all of them
                self.worker_restarts += 1
                self.actors.replace_worker(i)
            self.sync.worker_replaced(self.actors, dead, self.cfg.sync.timeout_s)
            return self._push_weights()
        seconds = out["timing_s/weight_sync"]
        out.update({"sync/seconds": seconds, "sync/gb_per_s": out["sync/bytes"] / max(seconds, 1e-9) / 1e9,
                    "sync/method": self.sync.methods,
                    "perf/rollout_peak_rss_mb": max(self.actors.workers.call("peak_rss_mb"))})
        return out

    def _worker_lost(self, i: int) -> None:
        """A rollout worker died mid-call: replace it (counted in `faults/worker_restarts`)."""
        self.worker_restarts += 1
        self.replace_worker(i)

    def replace_worker(self, i: int) -> None:
        """A fresh rollout worker i in place of the old one (killed if it still lives), on the current
        weights and version; its weight-sync group (if its method has one) is formed anew first."""
        self.actors.replace_worker(i)
        self.sync.worker_replaced(self.actors, [i], self.cfg.sync.timeout_s)
        self._push_weights()
        print(f"[rltrain] rollout worker {i} replaced and synced to weight version {self.version}", flush=True)

    def evaluate(self) -> dict[str, float]:
        ec = self.cfg.eval
        with self._timer("eval"):
            return evaluate(self.eval_rollout, self.files.test_rows[: ec.max_prompts], ec.n_samples, ec.temperature,
                            self.cfg.rollout.max_new_tokens, ec.correct_threshold, seed=self.cfg.trainer.seed + 4242,
                            greedy=ec.greedy)

    # ----- checkpoints ----------------------------------------------------------------------
    def save(self) -> Path:
        state = {"step": self.step_idx, "version": self.version, "schedule": self.schedule.state_dict(),
                 "algorithm": self.algo.state_dict(), "rng": checkpoint.rng_state(),
                 "wandb_id": getattr(self, "tracker", None) and self.tracker.wandb_id,
                 "engines": self.actors.workers.call("sampling_state"),
                 "eval_before": self.files.summary_before}
        return checkpoint.save(self.files.run_dir / "checkpoints", self.step_idx, self.trained_groups(), state,
                               self.cfg.trainer.keep_checkpoints)

    def trained_groups(self) -> dict[str, RankGroup]:
        """The actor groups whose weights train, by checkpoint directory name."""
        return {"learner": self.actors.learners, **({"critic": self.actors.critic} if self.actors.critic else {})}

    def _maybe_resume(self) -> str | None:
        if not self.files.resume_from:
            return None
        state = self.restore(self.files.resume_from)
        self.files.summary_before = state.get("eval_before")
        print(f"[rltrain] resumed from {self.files.resume_from} at step {self.step_idx}", flush=True)
        return state.get("wandb_id")

    def restore(self, ckpt: Path) -> dict[str, Any]:
        """Load a checkpoint into the live actors and this driver; the engines get its weights and version."""
        state = checkpoint.load(ckpt, self.trained_groups())
        self.step_idx, self.version = state["step"], state["version"]
        self.schedule.load_state_dict(state["schedule"])
        self.algo.load_state_dict(state["algorithm"])
        checkpoint.set_rng_state(state["rng"])
        engines = state.get("engines") or []
        if len(engines) == len(self.actors.workers):  # each engine's sampling counter: exact resume
            self.actors.workers.call_each("load_sampling_state", [(e,) for e in engines])
        self.version -= 1
        self.sync_weights()  # the engines start from the restored weights, at the checkpoint's version
        return state

    def _summary(self, before: dict, after: dict, ckpt: Path, export_dir: Path | None, wall_s: float,
                 report: Path | None, stopped_by: str | None = None) -> dict[str, Any]:
        summary = {"stopped_by": stopped_by,
            "steps": self.step_idx, "wall_s": wall_s, "eval_before": before, "eval_after": after,
            "pass@1_before": before.get("eval/pass@1"), "pass@1_after": after.get("eval/pass@1"),
            "run_dir": str(self.files.run_dir), "checkpoint": str(ckpt), "exported_model": export_dir and str(export_dir),
            "metrics": str(self.files.run_dir / "metrics.jsonl"), "wandb_run": self.tracker.wandb_dir,
            "report": str(report) if report else None,
            "model": self.files.model_path, "algorithm": self.cfg.algorithm.spec(),
        }
        path = self.files.run_dir / "summary.json"
        path.write_text(json.dumps(summary, indent=2))
        summary["summary_path"] = str(path)
        return summary

    def close(self) -> None:
        self.tracker.finish()
        self.sync.close()
        self.actors.stop()

    @contextmanager
    def _timer(self, name: str, accumulate: bool = False) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings[name] = self.timings.get(name, 0.0) + dt if accumulate else dt


def _ray_init_kwargs(cfg: Config) -> dict[str, Any]:
    import os

    if os.environ.get("RAY_ADDRESS"):
        return {}
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if cfg.trainer.num_cpus:
        kw["num_cpus"] = cfg.trainer.num_cpus
    return kw
