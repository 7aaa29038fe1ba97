"""Where the Ray actors of a run go: its placement plan (rltrain/workers/planner.py) as a placement group,
each actor's slot in it and its Ray options (rltrain/workers/actor_set.py starts the actors there).

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
from dataclasses import dataclass

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from rltrain.config import Config
from rltrain.workers.group import RankGroup
from rltrain.workers.net import free_port, node_endpoint
from rltrain.workers.planner import Cluster, Plan


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


def describe_placement(group) -> list[str]:
    """One line per actor of `group` (an ActorSet): its role and the node (address, id prefix) its bundle
    landed on."""
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


def place(plan: Plan, cfg: Config) -> tuple[object, list[dict], dict[tuple[str, int], Slot], bool]:
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


def actor_options(pg: object, slot: Slot, env: dict, gpu_cluster: bool) -> dict:
    """Ray options of an actor in its slot; a CPU-only actor on a GPU cluster is kept from seeing any GPU
    (Ray 2.60 no longer hides GPUs from actors that ask for none)."""
    if gpu_cluster and slot.num_gpus == 0:
        env = {"env_vars": {**env["env_vars"], "CUDA_VISIBLE_DEVICES": ""}}
    return {"num_cpus": slot.num_cpus, "num_gpus": slot.num_gpus, "runtime_env": env,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=slot.bundle)}
