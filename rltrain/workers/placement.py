"""Starts the Ray actors of a run where its placement plan (rltrain/workers/planner.py) puts them.

`plan_bundles` turns the plan into one placement group: on a CPU cluster a bundle per actor (learner
ranks, rollout workers, the reference, critic ranks) splitting the declared CPUs; with GPUs a bundle
per GPU the plan uses, whose actors ask for their fraction of it. A run started inside a placement
group of its own caller (a sweep's Ray Tune trial: `rltrain/driver/sweep.py` asks Tune for a head
bundle plus one per actor) places its actors in that group's bundles 1..n instead, so trials share a
cluster without over-asking it. `cpu_threads` sets each actor's torch threads: a schedule that runs
one phase at a time lets each actor use all cores while it works; one whose generation overlaps the
update (its `overlaps_generation`) splits the cores between them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from rltrain.config import Config, engine_dtype, engine_options
from rltrain.engines import resolve_engine_name
from rltrain.workers.colocated import ColocatedLearner
from rltrain.workers.critic import Critic
from rltrain.workers.group import RankGroup
from rltrain.workers.net import free_port, node_endpoint
from rltrain.workers.deepspeed_role import RankSpec
from rltrain.workers.learner import Learner
from rltrain.workers.reference import Reference
from rltrain.workers.planner import Cluster, Plan
from rltrain.workers.rollout_worker import RolloutWorker


@dataclass
class Actors:
    """The actors of a run: learner ranks, rollout workers and the optional reference, as groups."""

    learners: RankGroup
    workers: RankGroup
    reference: RankGroup | None
    pg: object
    owns_pg: bool = True  # False: the caller's placement group (a sweep trial's), left to the caller
    colocated: bool = False  # the rollout group's only member is learner rank 0
    spawn_worker: Callable[[int], Any] | None = None  # a fresh rollout worker i in worker i's bundle
    roles: list[tuple[str, int]] = field(default_factory=list)  # (role, index) of each actor, in plan order
    critic: RankGroup | None = None  # PPO's value model ranks, when the algorithm reads values
    slots: dict = field(default_factory=dict)  # (role, index) -> its Slot (bundle, CPUs, GPU fraction)


def actor_roles(cfg: Config, need_reference: bool, need_critic: bool = False) -> list[str]:
    """The role of each actor, in bundle order on a CPU cluster: learner ranks, rollout workers, the
    reference, critic ranks. Colocated, the engine lives in learner rank 0's actor (no rollout bundle)."""
    workers = 0 if cfg.placement == "colocated" else cfg.rollout.num_workers
    return (["learner"] * cfg.learner.num_ranks + ["rollout"] * workers + ["reference"] * int(need_reference)
            + ["critic"] * (cfg.critic.num_ranks if need_critic else 0))


def role_resources(cfg: Config, role: str) -> dict[str, float]:
    """The custom Ray resources a role's bundle asks for (`resources.<role>`)."""
    return dict(getattr(cfg.resources, role))


@dataclass(frozen=True)
class Slot:
    """Where one actor of the plan runs: its bundle and what it asks of it."""

    bundle: int
    num_cpus: float
    num_gpus: float


def plan_bundles(plan: Plan, cfg: Config, cpus: float) -> tuple[list[dict], dict[tuple[str, int], Slot]]:
    """The placement group's bundles and each actor's slot, from the plan (pure: tested on simulated
    clusters). CPU-only: one bundle per actor, the CPUs split between them (never over-asked). With GPUs:
    one bundle per GPU the plan uses (node-major, so Ray's PACK fills a node before the next) with a
    CPU share; the actors on a GPU ask for their fraction of its bundle (OpenRLHF's pattern). A
    tensor-parallel engine's actor sits in the bundle of its first GPU; vLLM's own workers take the others."""
    own = [a for a in plan.actors if a.in_actor is None and a.tp_rank == 0]
    if plan.cluster.gpus == 0:
        share = math.floor(100 * min(1.0, cpus / max(1, len(own)))) / 100
        bundles = [{"CPU": share, **role_resources(cfg, a.role)} for a in own]
        return bundles, {(a.role, a.rank): Slot(i, share, 0.0) for i, a in enumerate(own)}
    keys = sorted({(a.node, a.gpu) for a in plan.actors if a.gpu is not None and a.in_actor is None})
    index = {k: i for i, k in enumerate(keys)}
    cpu_per_gpu = math.floor(100 * min(1.0, cpus / max(1, len(keys)))) / 100
    bundles: list[dict] = [{"GPU": 1.0, "CPU": cpu_per_gpu} for _ in keys]
    for a in own:
        bundles[index[(a.node, a.gpu)]].update(role_resources(cfg, a.role))
    tenants = {k: sum(1 for a in own if (a.node, a.gpu) == k) for k in keys}
    slots = {(a.role, a.rank): Slot(index[(a.node, a.gpu)], math.floor(100 * cpu_per_gpu / tenants[(a.node, a.gpu)]) / 100,
                                    a.gpu_fraction) for a in own}
    return bundles, slots


def cluster_of_ray() -> Cluster:
    """The Ray cluster's GPUs: in all, and the most any alive node has."""
    per_node = [int(n.get("Resources", {}).get("GPU", 0)) for n in _alive_nodes()]
    gpus = sum(per_node)
    return Cluster(gpus, max(per_node + [1]) if gpus else 8)


def single_node() -> bool:
    return len(_alive_nodes()) == 1


def _alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def bundle_nodes(pg: object) -> dict[int, str]:
    """Bundle index -> the id of the node it was placed on."""
    return dict(ray.util.placement_group_table(pg)["bundles_to_node_id"])


def learner_rendezvous(pg: object, bundle: int) -> tuple[str, int]:
    """(address, port) of the torch.distributed store learner rank 0 hosts: loopback on one node,
    else rank 0's node address and a port free there (found by a task pinned to that node)."""
    if len(_alive_nodes()) == 1:
        return "127.0.0.1", free_port()
    node = bundle_nodes(pg)[bundle]
    task = ray.remote(num_cpus=0)(node_endpoint).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False))
    return tuple(RankGroup.gather([task.remote()])[0])


def describe_placement(group: "Actors") -> list[str]:
    """One line per actor: its role and the node (address, id prefix) its bundle landed on."""
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in _alive_nodes()}
    where = bundle_nodes(group.pg)
    return [f"{role} {i}: node {nodes.get(where[group.slots[(role, i)].bundle], '?')} "
            f"({where[group.slots[(role, i)].bundle][:8]})" for role, i in group.roles]


def cpu_threads(cfg: Config, overlap: bool, cores: int | None = None) -> tuple[int, int]:
    """(torch threads per learner rank, per rollout worker); `learner.threads` / `rollout.threads`
    win when set. `overlap`: generation runs while the learners update."""
    cores = cores or os.cpu_count() or 2
    n_learn, n_work = cfg.learner.num_ranks, cfg.rollout.num_workers
    if not overlap:
        learn, roll = max(1, cores // n_learn), cores
    else:  # generation and the update overlap: one share of the cores each
        learn = roll = max(1, cores // (n_learn + n_work))
    return cfg.learner.threads or learn, cfg.rollout.threads or roll


def _placement(plan: Plan, cfg: Config) -> tuple[object, list[dict], dict[tuple[str, int], Slot], bool]:
    """(placement group, its bundles, each actor's slot, whether the run owns the group). A run inside its caller's group (a sweep trial's: a head bundle plus one per actor,
    CPU only) uses bundles 1..n in the plan's order."""
    enclosing = ray.util.get_current_placement_group()
    if enclosing is not None:
        own = [a for a in plan.actors if a.in_actor is None and a.tp_rank == 0]
        specs = enclosing.bundle_specs
        if len(specs) != len(own) + 1:
            raise RuntimeError(f"this run is placed in a placement group of {len(specs)} bundles; it needs a head "
                               f"bundle plus one per actor ({len(own)} actors: {len(own) + 1} bundles)")
        slots = {(a.role, a.rank): Slot(1 + i, specs[1 + i].get("CPU", 0), specs[1 + i].get("GPU", 0))
                 for i, a in enumerate(own)}
        return enclosing, specs, slots, False
    cpus = ray.cluster_resources().get("CPU", 1)  # actors of a closed run may still be releasing theirs
    bundles, slots = plan_bundles(plan, cfg, cpus)
    pg = placement_group(bundles, strategy="PACK")
    try:
        ray.get(pg.ready(), timeout=120)
    except ray.exceptions.GetTimeoutError:
        raise RuntimeError(f"placement group {bundles} did not fit the cluster's resources "
                           f"{ray.available_resources()} within 120 s") from None
    return pg, bundles, slots, True


def _options(pg: object, slot: Slot, env: dict, gpu_cluster: bool) -> dict:
    """Ray options of an actor in its slot; a CPU-only actor on a GPU cluster is kept from seeing any GPU
    (Ray 2.60 no longer hides GPUs from actors that ask for none)."""
    if gpu_cluster and slot.num_gpus == 0:
        env = {"env_vars": {**env["env_vars"], "CUDA_VISIBLE_DEVICES": ""}}
    return {"num_cpus": slot.num_cpus, "num_gpus": slot.num_gpus, "runtime_env": env,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=slot.bundle)}


def start_actors(cfg: Config, plan: Plan, model_path: str, overlap: bool) -> Actors:
    """Place and start every actor of the plan; returns once the rollout engines are up (start-up errors
    surface here)."""
    n_learn, n_work = cfg.learner.num_ranks, cfg.rollout.num_workers
    need_reference, need_critic = bool(plan.of("reference")), bool(plan.of("critic"))
    pg, bundles, slots, owns_pg = _placement(plan, cfg)
    gpu_cluster = plan.cluster.gpus > 0
    env = {"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false",
                        "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}}

    def opts(role: str, rank: int) -> dict:
        return _options(pg, slots[(role, rank)], env, gpu_cluster)

    cores = os.cpu_count() or 2
    learn_threads, roll_threads = cpu_threads(cfg, overlap, cores)
    learner_cfg = cfg.learner.model_copy(update={"threads": learn_threads})
    engine = resolve_engine_name(cfg.rollout.engine, gpu_cluster)
    master = learner_rendezvous(pg, slots[("learner", 0)].bundle)

    def worker_kwargs(w: int) -> dict:
        options = engine_options(cfg, engine)
        if engine == "vllm" and options.get("gpu_memory_utilization") is None and w in plan.engine_memory:
            options["gpu_memory_utilization"] = plan.engine_memory[w]  # the plan's share of its GPU
        return {"model_path": model_path, "engine": engine, "dtype": engine_dtype(cfg),
                "seed": cfg.trainer.seed * 100 + w, "threads": roll_threads, "options": options}

    policy = {"temperature": cfg.rollout.temperature, "algorithm": cfg.algorithm.spec()}

    def learner_spec(r: int) -> RankSpec:
        return RankSpec(model_path=model_path, cfg=learner_cfg, rank=r, world_size=n_learn, master=master,
                        dtype=cfg.model.dtype, seed=cfg.trainer.seed,
                        gradient_checkpointing=cfg.model.gradient_checkpointing)

    colocated = cfg.placement == "colocated"
    learners = [
        ray.remote(ColocatedLearner).options(**opts("learner", 0)).remote(learner_spec(0), **policy,
                                                                           worker=worker_kwargs(0))
        if colocated and r == 0 else
        ray.remote(Learner).options(**opts("learner", r)).remote(learner_spec(r), **policy)
        for r in range(n_learn)
    ]

    def spawn_worker(w: int):
        return ray.remote(RolloutWorker).options(**opts("rollout", w)).remote(**worker_kwargs(w))

    workers = learners[:1] if colocated else [spawn_worker(w) for w in range(n_work)]
    reference = None
    if need_reference:
        reference = RankGroup([ray.remote(Reference).options(**opts("reference", 0)).remote(
            model_path=cfg.reference.path or model_path, temperature=cfg.rollout.temperature,
            micro_batch_size=cfg.learner.micro_batch_size, threads=cores,
            max_tokens_per_micro_batch=cfg.learner.max_tokens_per_micro_batch, dtype=cfg.model.dtype,
            attn_implementation=cfg.learner.attn_implementation, share_prompts=cfg.learner.share_prompts)])
    critic = _start_critic(cfg, model_path, opts, pg, slots, learn_threads) if need_critic else None
    roles = [(role, rank) for role, rank in slots]
    group = Actors(RankGroup(learners), RankGroup(workers), reference, pg, owns_pg, colocated,
                   None if colocated else spawn_worker, roles, critic, slots)
    group.workers.call("get_version")  # surface start-up errors early
    return group


def _start_critic(cfg: Config, model_path: str, opts: Callable[[str, int], dict], pg: object,
                  slots: dict[tuple[str, int], Slot], threads: int) -> RankGroup:
    """The critic's ranks (a DeepSpeed world of their own, meeting at critic rank 0's node)."""
    master = learner_rendezvous(pg, slots[("critic", 0)].bundle)
    cc = cfg.critic
    critic_cfg = cc.model_copy(update={"threads": cc.threads or threads})
    return RankGroup([ray.remote(Critic).options(**opts("critic", r)).remote(
        RankSpec(model_path=cc.path or model_path, cfg=critic_cfg, rank=r, world_size=cc.num_ranks, master=master,
                 dtype=cfg.model.dtype, seed=cfg.trainer.seed), value_clip=cc.value_clip)
        for r in range(cc.num_ranks)])


def replace_worker(group: Actors, i: int) -> None:
    """Kill rollout worker i (if it still lives) and start a fresh one in its bundle; the caller
    syncs its weights (and, with the collective sync, re-forms the group)."""
    if group.spawn_worker is None:
        raise RuntimeError("colocated placement: the engine lives in learner rank 0 and cannot be replaced alone")
    ray.kill(group.workers.actors[i])
    group.workers.actors[i] = group.spawn_worker(i)
    RankGroup([group.workers.actors[i]]).call("get_version")  # surface start-up errors


def stop_actors(group: Actors) -> None:
    group.learners.kill()
    if not group.colocated:
        group.workers.kill()
    for optional in (group.reference, group.critic):
        if optional is not None:
            optional.kill()
    if group.owns_pg:
        ray.util.remove_placement_group(group.pg)
