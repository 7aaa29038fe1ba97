"""Starts the Ray actors of a run with explicit placement.

One placement group holds a bundle per actor: learner ranks, rollout workers and (optionally) the
reference and the critic's ranks. A run started inside a placement group of its own caller (a sweep's Ray Tune trial:
`rltrain/driver/sweep.py` asks Tune for a head bundle plus one per actor) places its actors in that
group's bundles 1..n instead, so trials share a cluster without over-asking it. On a CPU machine the bundles split the declared CPUs between the roles, and
`cpu_threads` sets each actor's torch threads: a schedule that runs one phase at a time lets each
actor use all cores while it works; one whose generation overlaps the update (its
`overlaps_generation`) splits the cores between them. With GPUs each learner rank and rollout
worker gets one GPU of its own.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import uuid
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
from rltrain.workers.learner import Learner
from rltrain.workers.reference import Reference
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
    first: int = 0  # index of the first actor's bundle in `pg` (1 in a sweep trial's group)
    roles: list[tuple[str, int]] = field(default_factory=list)  # (role, index) of each bundle, in order
    critic: RankGroup | None = None  # PPO's value model ranks, when the algorithm reads values
    sync_store: str | None = None  # the weight-sync group's file store (one-node rendezvous), removed at stop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def actor_roles(cfg: Config, need_reference: bool, need_critic: bool = False) -> list[str]:
    """The role of each actor, in bundle order: learner ranks, rollout workers, the reference, critic
    ranks. Colocated, the engine lives in learner rank 0's actor (no rollout bundle)."""
    workers = 0 if cfg.placement == "colocated" else cfg.rollout.num_workers
    return (["learner"] * cfg.learner.num_ranks + ["rollout"] * workers + ["reference"] * int(need_reference)
            + ["critic"] * (cfg.critic.num_ranks if need_critic else 0))


def actor_count(cfg: Config, need_reference: bool, need_critic: bool = False) -> int:
    """Actors (and bundles) of a run."""
    return len(actor_roles(cfg, need_reference, need_critic))


def role_resources(cfg: Config, role: str) -> dict[str, float]:
    """The custom Ray resources a role's bundle asks for (`resources.<role>`)."""
    return dict(getattr(cfg.resources, role))


def _bundles(cfg: Config, roles: list[str]) -> list[dict]:
    n_actors = len(roles)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus >= n_actors:
        return [{"CPU": 1, "GPU": 1, **role_resources(cfg, r)} for r in roles]
    cpus = ray.cluster_resources().get("CPU", 1)  # actors of a closed run may still be releasing theirs
    share = math.floor(100 * min(1.0, cpus / n_actors)) / 100  # never over-ask: the group must fit
    return [{"CPU": share, **role_resources(cfg, r)} for r in roles]


def _alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def node_endpoint() -> tuple[str, int]:
    """(this node's address, a port free on it), for a rendezvous hosted here."""
    return ray.util.get_node_ip_address(), free_port()


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
    return [f"{role} {i}: node {nodes.get(where[group.first + b], '?')} ({where[group.first + b][:8]})"
            for b, (role, i) in enumerate(group.roles)]


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


def _placement(cfg: Config, roles: list[str]) -> tuple[object, list[dict], int, bool]:
    """(placement group, the actors' bundles, index of the first actor bundle, whether the run owns it)."""
    n_actors = len(roles)
    enclosing = ray.util.get_current_placement_group()
    if enclosing is not None:
        specs = enclosing.bundle_specs
        if len(specs) != n_actors + 1:
            raise RuntimeError(f"this run is placed in a placement group of {len(specs)} bundles; it needs a head "
                               f"bundle plus one per actor ({n_actors} actors: {n_actors + 1} bundles)")
        return enclosing, specs[1:], 1, False
    bundles = _bundles(cfg, roles)
    pg = placement_group(bundles, strategy="PACK")
    try:
        ray.get(pg.ready(), timeout=120)
    except ray.exceptions.GetTimeoutError:
        raise RuntimeError(f"placement group {bundles} did not fit the cluster's resources "
                           f"{ray.available_resources()} within 120 s") from None
    return pg, bundles, 0, True


def start_actors(cfg: Config, model_path: str, need_reference: bool, overlap: bool,
                 need_critic: bool = False) -> Actors:
    """Place and start every actor; returns once the rollout engines are up (start-up errors surface here)."""
    n_learn, n_work = cfg.learner.num_ranks, cfg.rollout.num_workers
    roles = actor_roles(cfg, need_reference, need_critic)
    n_actors = len(roles)
    pg, bundles, first, owns_pg = _placement(cfg, roles)

    def opts(i: int) -> dict:
        b = bundles[i]
        return {"num_cpus": b.get("CPU", 0), "num_gpus": b.get("GPU", 0),
                "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=first + i)}

    cores = os.cpu_count() or 2
    learn_threads, roll_threads = cpu_threads(cfg, overlap, cores)
    learner_cfg = cfg.learner.model_copy(update={"threads": learn_threads})
    engine = resolve_engine_name(cfg.rollout.engine, int(ray.cluster_resources().get("GPU", 0)) > 0)
    env = {"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false",
                        "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}}
    master = learner_rendezvous(pg, first)

    def worker_args(w: int) -> tuple:
        return (model_path, engine, engine_dtype(cfg), cfg.trainer.seed * 100 + w, roll_threads,
                engine_options(cfg, engine))

    def learner_args(r: int) -> tuple:
        return (model_path, learner_cfg, r, n_learn, master, cfg.model.dtype, cfg.rollout.temperature,
                cfg.algorithm.spec(), cfg.trainer.seed, cfg.model.gradient_checkpointing)

    colocated = cfg.placement == "colocated"
    learners = [
        ray.remote(ColocatedLearner).options(**opts(0), runtime_env=env).remote(learner_args(0), worker_args(0))
        if colocated and r == 0 else
        ray.remote(Learner).options(**opts(r), runtime_env=env).remote(*learner_args(r))
        for r in range(n_learn)
    ]
    def spawn_worker(w: int):
        return ray.remote(RolloutWorker).options(**opts(n_learn + w), runtime_env=env).remote(*worker_args(w))

    workers = learners[:1] if colocated else [spawn_worker(w) for w in range(n_work)]
    reference = None
    if need_reference:
        reference = RankGroup([ray.remote(Reference).options(**opts(roles.index("reference")), runtime_env=env).remote(
            cfg.reference.path or model_path, cfg.rollout.temperature, cfg.learner.micro_batch_size, cores,
            cfg.learner.max_tokens_per_micro_batch, cfg.model.dtype, cfg.learner.attn_implementation,
            cfg.learner.share_prompts)])
    critic = _start_critic(cfg, model_path, roles, opts, pg, first, env, learn_threads) if need_critic else None
    numbered = [(role, roles[:b].count(role)) for b, role in enumerate(roles)]
    group = Actors(RankGroup(learners), RankGroup(workers), reference, pg, owns_pg, colocated,
                   None if colocated else spawn_worker, first, numbered, critic)
    group.workers.call("get_version")  # surface start-up errors early
    return group


def _start_critic(cfg: Config, model_path: str, roles: list[str], opts: Callable[[int], dict], pg: object,
                  first: int, env: dict, threads: int) -> RankGroup:
    """The critic's ranks (a DeepSpeed world of their own, meeting at critic rank 0's node)."""
    b0 = roles.index("critic")
    master = learner_rendezvous(pg, first + b0)
    cc = cfg.critic
    critic_cfg = cc.model_copy(update={"threads": cc.threads or threads})
    return RankGroup([ray.remote(Critic).options(**opts(b0 + r), runtime_env=env).remote(
        cc.path or model_path, critic_cfg, r, cc.num_ranks, master, cfg.model.dtype, cfg.rollout.temperature,
        {"value_clip": cc.value_clip}, cfg.trainer.seed, False) for r in range(cc.num_ranks)])


def replace_worker(group: Actors, i: int) -> None:
    """Kill rollout worker i (if it still lives) and start a fresh one in its bundle; the caller
    syncs its weights (and, with the collective sync, re-forms the group)."""
    if group.spawn_worker is None:
        raise RuntimeError("colocated placement: the engine lives in learner rank 0 and cannot be replaced alone")
    ray.kill(group.workers.actors[i])
    group.workers.actors[i] = group.spawn_worker(i)
    RankGroup([group.workers.actors[i]]).call("get_version")  # surface start-up errors


def connect_sync_group(group: Actors, timeout_s: float) -> None:
    """Learner rank 0 and every rollout worker join a fresh weight-sync process group
    (rltrain/workers/sync_group.py): through a file store on a one-node cluster, else a TCP store at
    rank 0's node address. Called at start-up and again after a worker is replaced."""
    lead = RankGroup(group.learners.actors[:1])
    _remove_sync_store(group)  # the previous group's (a worker was replaced)
    if len(_alive_nodes()) == 1:
        group.sync_store = f"{tempfile.gettempdir()}/rltrain-sync-{uuid.uuid4().hex}"
        rendezvous = f"file://{group.sync_store}"
    else:
        host, port = lead.call("sync_endpoint")[0]
        rendezvous = f"tcp://{host}:{port}"
    world = len(group.workers) + 1
    futures = lead.submit("join_sync_group", rendezvous, world, timeout_s)
    futures += group.workers.submit_each("join_sync_group", [(rendezvous, i + 1, world, timeout_s)
                                                             for i in range(len(group.workers))])
    RankGroup.gather(futures)


def _remove_sync_store(group: Actors) -> None:
    """Delete the file store of the weight-sync group's rendezvous (its members no longer read it)."""
    if group.sync_store:
        try:
            os.remove(group.sync_store)
        except FileNotFoundError:
            pass
        group.sync_store = None


def stop_actors(group: Actors) -> None:
    _remove_sync_store(group)
    group.learners.kill()
    if not group.colocated:
        group.workers.kill()
    for optional in (group.reference, group.critic):
        if optional is not None:
            optional.kill()
    if group.owns_pg:
        ray.util.remove_placement_group(group.pg)
