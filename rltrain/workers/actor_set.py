"""The actors of a run, owned in one place: `ActorSet` starts them where the placement plan puts them,
replaces a lost rollout worker, restarts every actor after a lost learner rank or reference, and stops
them; it answers which of them are alive.

Each role is started from keywords (rltrain/workers/deepspeed_role.RankSpec for the DeepSpeed roles,
the RolloutWorker's and the Reference's keyword arguments), in its slot of the placement group
(rltrain/workers/placement.py). The algorithm the learners run is the set's: `set_algorithm` changes it
on the live learners and for every later start, so a restart brings back the algorithm the run was
using, not the config's. The role groups (`learners`, `workers`, `reference`, `critic`) are the same
objects for the run's life: a restart or a replacement swaps their members in place, so whoever holds a
group (the rollouts, the collector) sees the new actors.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import ray

from rltrain.config import Config, engine_dtype, engine_options
from rltrain.engines import resolve_engine_name
from rltrain.workers.critic import Critic
from rltrain.workers.deepspeed_role import RankSpec
from rltrain.workers.engine_hosting import engine_hosting
from rltrain.workers.group import RankGroup
from rltrain.workers.placement import actor_options, cpu_threads, learner_rendezvous, place
from rltrain.workers.planner import Plan
from rltrain.workers.reference import Reference
from rltrain.workers.rollout_worker import RolloutWorker

__all__ = ["ActorSet"]

_ENV = {"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false",
                     "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}}


class ActorSet:
    """Learner ranks, rollout workers, the optional reference and critic of one run, as role groups.
    Construction places and starts every actor of `plan` and returns once the rollout engines are up
    (start-up errors surface here)."""

    def __init__(self, cfg: Config, plan: Plan, model_path: str, overlap: bool) -> None:
        self.cfg, self.plan, self.model_path, self.overlap = cfg, plan, model_path, overlap
        self.algorithm: dict[str, Any] = cfg.algorithm.spec()
        self.hosting = engine_hosting(plan)  # engines in actors of their own, or inside learner rank 0
        self.learners, self.workers = RankGroup([]), RankGroup([])
        self.reference = RankGroup([]) if plan.of("reference") else None
        self.critic = RankGroup([]) if plan.of("critic") else None
        self.pg, self.owns_pg = None, False
        try:
            self._start()
        except BaseException:  # nothing may outlive a failed start: the actors begun and the placement group
            self.stop()
            raise

    # ----- start -----------------------------------------------------------------------------
    def _start(self) -> None:
        cfg, plan = self.cfg, self.plan
        self.pg, _, self.slots, self.owns_pg = place(plan, cfg)
        self.roles = list(self.slots)  # (role, index) of each actor, in plan order
        self.gpu_cluster = plan.cluster.gpus > 0
        self.learn_threads, self.roll_threads = cpu_threads(cfg, self.overlap, os.cpu_count() or 2)
        self.engine = resolve_engine_name(cfg.rollout.engine, self.gpu_cluster)
        learner_cfg = cfg.learner.model_copy(update={"threads": self.learn_threads})
        policy = {"temperature": cfg.rollout.temperature, "algorithm": self.algorithm}

        def learners(master: tuple[str, int]) -> list:
            def spec(r: int) -> RankSpec:
                return RankSpec(model_path=self.model_path, cfg=learner_cfg, rank=r,
                                world_size=cfg.learner.num_ranks, master=master, dtype=cfg.model.dtype,
                                seed=cfg.trainer.seed, gradient_checkpointing=cfg.model.gradient_checkpointing)

            def rank(r: int):
                cls, hosted = self.hosting.learner_rank(r, self._worker_kwargs)
                return self._remote(cls, "learner", r, spec(r), **policy, **hosted)

            return [rank(r) for r in range(cfg.learner.num_ranks)]

        self.learners.actors[:] = self._start_world("learner", learners)
        self.workers.actors[:] = self.hosting.rollout_actors(self.learners.actors, self._spawn_worker,
                                                             cfg.rollout.num_workers)
        if self.reference is not None:
            self.reference.actors[:] = [self._remote(
                Reference, "reference", 0, model_path=cfg.reference.path or self.model_path,
                temperature=cfg.rollout.temperature, micro_batch_size=cfg.learner.micro_batch_size,
                threads=os.cpu_count() or 2, max_tokens_per_micro_batch=cfg.learner.max_tokens_per_micro_batch,
                dtype=cfg.model.dtype, attn_implementation=cfg.learner.attn_implementation,
                share_prompts=cfg.learner.share_prompts)]
        if self.critic is not None:
            self.critic.actors[:] = self._start_world("critic", self._critic_ranks)
        self.workers.call("get_version")  # surface start-up errors early

    def _start_world(self, role: str, start: Callable[[tuple[str, int]], list]) -> list:
        """The ranks of a DeepSpeed world, up: `start(rendezvous)` started at a port free on rank 0's node,
        and once more at a fresh port when rank 0 found it taken meanwhile (the port is chosen before rank
        0 binds it, so another process can take it in between). A world not up within
        `trainer.start_timeout_s` stops the run naming the silent ranks."""
        timeout = self.cfg.trainer.start_timeout_s
        for attempt in (1, 2):
            ranks = start(learner_rendezvous(self.pg, self.slots[(role, 0)].bundle))
            try:
                RankGroup(ranks).call_within("ping", timeout)
                return ranks
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
                RankGroup(ranks).kill()
                if attempt == 2 or not _port_taken(e):
                    raise
                print(f"[rltrain] {role} rank 0's rendezvous port was taken before it could bind it; starting the "
                      f"{role} ranks again at another port", flush=True)
            except TimeoutError as e:
                RankGroup(ranks).kill()
                raise RuntimeError(f"{role} ranks did not start within trainer.start_timeout_s={timeout:g} s "
                                   f"({e})") from None
        raise AssertionError("unreachable")

    def _remote(self, cls: type, role: str, index: int, *args: Any, **kwargs: Any):
        opts = actor_options(self.pg, self.slots[(role, index)], _ENV, self.gpu_cluster)
        return ray.remote(cls).options(**opts).remote(*args, **kwargs)

    def _worker_kwargs(self, w: int) -> dict[str, Any]:
        options = engine_options(self.cfg, self.engine)
        memory = self.plan.engine_memory
        if self.engine == "vllm" and options.get("gpu_memory_utilization") is None and w in memory:
            options["gpu_memory_utilization"] = memory[w]  # the plan's share of its GPU
        return {"model_path": self.model_path, "engine": self.engine, "dtype": engine_dtype(self.cfg),
                "seed": self.cfg.trainer.seed * 100 + w, "threads": self.roll_threads, "options": options}

    def _spawn_worker(self, w: int):
        return self._remote(RolloutWorker, "rollout", w, **self._worker_kwargs(w))

    def _critic_ranks(self, master: tuple[str, int]) -> list:
        """The critic's ranks (a DeepSpeed world of their own, meeting at critic rank 0's node)."""
        cc = self.cfg.critic
        critic_cfg = cc.model_copy(update={"threads": cc.threads or self.learn_threads})
        return [self._remote(Critic, "critic", r, RankSpec(
            model_path=cc.path or self.model_path, cfg=critic_cfg, rank=r, world_size=cc.num_ranks, master=master,
            dtype=self.cfg.model.dtype, seed=self.cfg.trainer.seed), value_clip=cc.value_clip)
            for r in range(cc.num_ranks)]

    # ----- the algorithm ---------------------------------------------------------------------
    def set_algorithm(self, spec: dict[str, Any]) -> None:
        """Run `spec` on the live learners, and on every learner started from now on."""
        self.learners.call("set_algorithm", spec)
        self.algorithm = spec

    # ----- liveness, replacement, restart ----------------------------------------------------
    def dead_rollout_workers(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if not _alive(w, "get_version")]

    def core_actor_died(self) -> bool:
        """Has a learner rank or the reference died?"""
        core = list(self.learners) + (list(self.reference) if self.reference is not None else [])
        return not all(_alive(a, "ping") for a in core)

    def replace_worker(self, i: int) -> None:
        """Kill rollout worker i (if it still lives) and start a fresh one in its slot; the caller syncs its
        weights (and, with the collective sync, forms its group anew)."""
        if not self.hosting.replaceable:
            raise RuntimeError("colocated placement: the engine lives in learner rank 0 and cannot be replaced alone")
        ray.kill(self.workers.actors[i])
        self.workers.actors[i] = self._spawn_worker(i)
        RankGroup([self.workers.actors[i]]).call("get_version")  # surface start-up errors

    def restart(self) -> None:
        """Every actor stopped and started again in the same roles (fresh weights: the caller loads a
        checkpoint), with the algorithm the run is using."""
        self.stop()
        self._start()

    def stop(self) -> None:
        """Kill every actor and release the placement group the set made (safe to call twice)."""
        self.learners.kill()
        self.hosting.stop(self.workers)
        for optional in (self.reference, self.critic):
            if optional is not None:
                optional.kill()
        if self.owns_pg and self.pg is not None:
            ray.util.remove_placement_group(self.pg)
        self.pg, self.owns_pg = None, False


def _port_taken(error: Exception) -> bool:
    text = str(error)
    return "EADDRINUSE" in text or "address already in use" in text.lower()


def _alive(actor, method: str) -> bool:
    try:
        RankGroup([actor]).call(method)
        return True
    except ray.exceptions.RayActorError:
        return False
