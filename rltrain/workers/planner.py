"""The placement planner: a run's config and a cluster -> where every actor lands and how weights move.

Pure: no Ray, no torch. `plan(cfg, cluster)` is what the trainer executes and what `launch/grpo.py
--plan` prints, so the two never disagree; `check(plan)` lists what would break on real hardware.

Roles: learner ranks (one DeepSpeed world: an NCCL group), rollout engines (each
`rollout.vllm.tensor_parallel_size` GPUs on one node: an NCCL group of its own, and every GPU of every
engine joins the weight-sync group with learner rank 0), the reference, critic ranks (a DeepSpeed world
of their own) and, when a `reward_model` reward is configured, the reward model, which is scored in
the driver process (listed `in_actor: driver`, no GPU share of the plan's).

GPU rules, in order (OpenRLHF's hybrid engine shares GPUs through fractional bundles the same way):
1. Learner ranks take GPUs 0..L-1; each rollout engine takes tp consecutive GPUs of one node after
   them while GPUs last. Engines that do not fit share the learners' GPUs (the hybrid engine), one
   engine GPU per learner GPU, so no NCCL group ever has two members on one GPU.
2. The reference and the critic ranks take free GPUs if any are left, else share the learners'
   (critic rank i with learner rank i, the reference with learner 0); they are in no group with the
   learners.
3. Actors on one GPU get equal fractions of it (rounded down to 1/100), summing to at most 1.
`placement: colocated` puts the one engine inside learner rank 0's actor (same process and GPU).
Without GPUs every actor is CPU-only (gpu None).

Weight sync, per learner rank 0 -> engine edge (`SYNC_METHODS`): `in_process` (colocated), `cuda_ipc`
(one of the engine's GPUs is learner rank 0's, so it cannot join an NCCL group with it: tensors are
handed over by CUDA IPC handles on that node), `nccl_broadcast` (GPUs apart), on CPU `gloo_broadcast`
or `object_store` (`sync.method`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SYNC_METHODS", "ActorPlacement", "Cluster", "Plan", "PlanError", "SyncEdge", "check", "cluster_for",
           "dumps", "plan", "plan_for_config", "roles_of"]

SYNC_METHODS = ("in_process", "cuda_ipc", "nccl_broadcast", "gloo_broadcast", "object_store")


class PlanError(ValueError):
    """The cluster cannot hold the run as configured (the message names the keys to change)."""


@dataclass(frozen=True)
class Cluster:
    """GPUs in all and per node (nodes are filled in order). gpus 0: a CPU-only cluster."""

    gpus: int = 0
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.gpus_per_node < 1:
            raise PlanError(f"cluster.gpus must be >= 0 and cluster.gpus_per_node >= 1, got {self.gpus}, "
                            f"{self.gpus_per_node}")

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.gpus / self.gpus_per_node))


@dataclass
class ActorPlacement:
    """One actor (for a tensor-parallel engine: one of its GPUs, `tp_rank`)."""

    role: str
    rank: int
    node: int
    gpu: int | None  # index within its node; None: CPU only (kept from seeing any GPU)
    gpu_fraction: float
    tp_rank: int = 0
    in_actor: str | None = None  # the actor it lives in when it is not one of its own (colocated engine)

    @property
    def name(self) -> str:
        return f"{self.role}/{self.rank}"


@dataclass
class SyncEdge:
    src: str
    dst: str
    method: str


@dataclass
class Plan:
    cluster: Cluster
    actors: list[ActorPlacement]
    weight_sync: list[SyncEdge]
    engine_memory: dict[int, float] = field(default_factory=dict)  # engine rank -> share of its GPUs' memory

    def to_json(self) -> dict[str, Any]:
        keys = ("role", "rank", "node", "gpu", "gpu_fraction")
        actors = [{k: getattr(a, k) for k in keys} | ({"tp_rank": a.tp_rank} if a.tp_rank else {})
                  | ({"in_actor": a.in_actor} if a.in_actor else {}) for a in self.actors]
        return {"actors": actors, "weight_sync": [{"from": e.src, "to": e.dst, "method": e.method}
                                                   for e in self.weight_sync]}

    def table(self) -> str:
        """The plan for people: one line per actor, then the weight-sync edges."""
        c = self.cluster
        lines = [f"cluster: {c.gpus} GPUs, {c.gpus_per_node} per node, {c.nodes} node(s)",
                 f"{'actor':<16}{'node':>5}{'gpu':>6}{'share':>7}  notes"]
        for a in self.actors:
            gpu = "-" if a.gpu is None else str(a.gpu)
            notes = []
            if a.tp_rank or (a.role == "rollout" and self.tp_of(a.rank) > 1):
                notes.append(f"tensor-parallel rank {a.tp_rank}")
            if a.in_actor:
                notes.append(f"inside {a.in_actor}")
            if a.role == "rollout" and a.rank in self.engine_memory and a.tp_rank == 0:
                notes.append(f"vLLM memory share {self.engine_memory[a.rank]:.2f}")
            if a.gpu is None:
                notes.append("CPU only")
            lines.append(f"{a.name:<16}{a.node:>5}{gpu:>6}{a.gpu_fraction:>7.2f}  {', '.join(notes)}")
        lines.append("weight sync:")
        lines += [f"  {e.src} -> {e.dst}: {e.method}" for e in self.weight_sync]
        return "\n".join(lines)

    def tp_of(self, engine: int) -> int:
        return sum(1 for a in self.actors if a.role == "rollout" and a.rank == engine)

    def of(self, role: str, rank: int = 0) -> list[ActorPlacement]:
        return [a for a in self.actors if a.role == role and a.rank == rank]


def cluster_for(cfg, visible_gpus: int) -> Cluster:
    """`cluster.gpus` / `cluster.gpus_per_node` where set, else this machine's `visible_gpus` on one node."""
    gpus = visible_gpus if cfg.cluster.gpus is None else cfg.cluster.gpus
    per_node = cfg.cluster.gpus_per_node or (min(gpus, 8) if cfg.cluster.gpus is not None else gpus) or 1
    return Cluster(gpus, per_node)


def roles_of(cfg, need_reference: bool, need_critic: bool) -> dict[str, int]:
    """How many of each role the run starts (engines counted once, whatever their tensor parallelism)."""
    rm = any(f.name == "reward_model" for f in cfg.reward.functions)
    return {"learner": cfg.learner.num_ranks, "rollout": cfg.rollout.num_workers,
            "reference": int(need_reference), "critic": cfg.critic.num_ranks if need_critic else 0,
            "reward_model": int(rm)}


class _Gpus:
    """Global GPU slots (node-major), what sits on each, and the next free one."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.tenants: dict[int, list[ActorPlacement]] = {}
        self.next_free = 0

    def where(self, g: int) -> tuple[int, int]:
        return divmod(g, self.cluster.gpus_per_node)

    def free(self) -> int:
        return self.cluster.gpus - self.next_free

    def take(self, n: int = 1) -> list[int] | None:
        """n consecutive free GPUs on one node (skipping to the next node when this one has too few)."""
        g = self.next_free
        if n > self.cluster.gpus_per_node:
            return None
        if g % self.cluster.gpus_per_node + n > self.cluster.gpus_per_node:
            g = (g // self.cluster.gpus_per_node + 1) * self.cluster.gpus_per_node
        if g + n > self.cluster.gpus:
            return None
        self.next_free = g + n
        return list(range(g, g + n))

    def put(self, role: str, rank: int, g: int, tp_rank: int = 0) -> ActorPlacement:
        node, local = self.where(g)
        a = ActorPlacement(role, rank, node, local, 0.0, tp_rank)
        self.tenants.setdefault(g, []).append(a)
        return a


def _driver_side(counts: dict[str, int]) -> list[ActorPlacement]:
    """The reward model is scored in the driver process (on its reward's `device` param), not an actor."""
    return [ActorPlacement("reward_model", r, 0, None, 0.0, in_actor="driver") for r in range(counts["reward_model"])]


def _cpu_plan(cfg, counts: dict[str, int], cluster: Cluster) -> Plan:
    actors = [ActorPlacement(role, r, 0, None, 0.0) for role, n in counts.items() for r in range(n)
              if not (role == "rollout" and cfg.placement == "colocated") and role != "reward_model"]
    actors += _driver_side(counts)
    if cfg.placement == "colocated":
        actors.insert(1, ActorPlacement("rollout", 0, 0, None, 0.0, in_actor="learner/0"))
        method = "in_process"
    else:
        method = {"object_store": "object_store"}.get(cfg.sync.method, "gloo_broadcast")
    edges = [SyncEdge("learner/0", f"rollout/{w}", method) for w in range(counts["rollout"])]
    return Plan(cluster, actors, edges)


def plan(cfg, cluster: Cluster, need_reference: bool, need_critic: bool) -> Plan:
    """Where each actor of `cfg` lands on `cluster` and how weights reach each engine (module docstring);
    `PlanError` when the cluster cannot hold it."""
    counts = roles_of(cfg, need_reference, need_critic)
    tp = cfg.rollout.vllm.tensor_parallel_size
    if cluster.gpus == 0:
        if tp > 1:
            raise PlanError(f"rollout.vllm.tensor_parallel_size={tp} needs GPUs; this cluster has none")
        return _cpu_plan(cfg, counts, cluster)
    gpus, n_learn, n_eng = _Gpus(cluster), counts["learner"], counts["rollout"]
    colocated = cfg.placement == "colocated"
    if colocated and tp > 1:
        raise PlanError("placement: colocated runs the engine inside learner rank 0's process, on its one GPU: "
                        f"rollout.vllm.tensor_parallel_size must be 1, got {tp}")
    learner_gpus = gpus.take(n_learn) if n_learn <= cluster.gpus_per_node else _spread(gpus, n_learn)
    if learner_gpus is None:
        raise PlanError(f"learner.num_ranks={n_learn} needs {n_learn} GPUs (one per rank), the cluster has "
                        f"{cluster.gpus}")
    actors = [gpus.put("learner", r, g) for r, g in enumerate(learner_gpus)]
    engines: dict[int, list[int]] = {}
    if colocated:
        actors.append(ActorPlacement("rollout", 0, actors[0].node, actors[0].gpu, 0.0, in_actor="learner/0"))
    else:
        for w in range(n_eng):
            engines[w] = gpus.take(tp) or _hybrid(gpus, learner_gpus, engines, tp, w, cfg)
            actors += [gpus.put("rollout", w, g, t) for t, g in enumerate(engines[w])]
    for role, share_with in (("reference", lambda r: learner_gpus[0]), ("critic", lambda r: learner_gpus[r % n_learn])):
        for r in range(counts[role]):
            g = (gpus.take(1) or [share_with(r)])[0]
            actors.append(gpus.put(role, r, g))
    actors += _driver_side(counts)
    _fractions(gpus, actors)
    edges = [SyncEdge("learner/0", "rollout/0", "in_process")] if colocated else [
        SyncEdge("learner/0", f"rollout/{w}", _gpu_method(cfg, learner_gpus[0] in gs)) for w, gs in engines.items()]
    memory = {w: _engine_memory(cfg, gpus, gs) for w, gs in engines.items()}
    return Plan(cluster, actors, edges, memory)


def _spread(gpus: _Gpus, n: int) -> list[int] | None:
    """n learner ranks over several nodes (one GPU each, in order)."""
    out = []
    for _ in range(n):
        got = gpus.take(1)
        if got is None:
            return None
        out += got
    return out


def _hybrid(gpus: _Gpus, learner_gpus: list[int], engines: dict[int, list[int]], tp: int, w: int, cfg) -> list[int]:
    """An engine that found no free GPUs shares tp learner GPUs of one node that no engine uses yet."""
    used = {g for gs in engines.values() for g in gs}
    per_node: dict[int, list[int]] = {}
    for g in learner_gpus:
        if g not in used:
            per_node.setdefault(gpus.where(g)[0], []).append(g)
    for node_gpus in per_node.values():
        if len(node_gpus) >= tp:
            return node_gpus[:tp]
    need = (w + 1) * tp
    raise PlanError(f"rollout.num_workers={cfg.rollout.num_workers} engines x tensor_parallel_size={tp} need {need} "
                    f"GPUs that no other engine uses (learners' GPUs may be shared); the cluster has {gpus.cluster.gpus} "
                    f"({gpus.cluster.gpus_per_node} per node): lower rollout.num_workers or tensor_parallel_size")


def _gpu_method(cfg, shares_learner_gpu: bool) -> str:
    """`sync.method: object_store` is kept where asked; otherwise NCCL unless the engine shares learner
    rank 0's GPU (one NCCL group cannot have two members on a GPU): then CUDA IPC."""
    if cfg.sync.method == "object_store":
        return "object_store"
    return "cuda_ipc" if shares_learner_gpu else "nccl_broadcast"


def _fractions(gpus: _Gpus, actors: list[ActorPlacement]) -> None:
    for tenants in gpus.tenants.values():
        share = math.floor(100 / len(tenants)) / 100
        for a in tenants:
            a.gpu_fraction = share
    for a in actors:
        if a.in_actor:
            a.gpu_fraction = 0.0  # it uses its host actor's share


def _engine_memory(cfg, gpus: _Gpus, engine_gpus: list[int]) -> float:
    """vLLM's gpu_memory_utilization for an engine: 0.9 of a GPU of its own; shared, its fraction of 0.9
    (the learner on that GPU needs the rest); a value the user set wins."""
    if cfg.rollout.vllm.gpu_memory_utilization is not None:
        return cfg.rollout.vllm.gpu_memory_utilization
    tenants = max(len(gpus.tenants[g]) for g in engine_gpus)
    return round(0.9 / tenants, 2)


def check(p: Plan) -> list[str]:
    """What would break: a GPU's fractions over 1, two members of one NCCL group on one GPU, a GPU index
    beyond its node, an engine's tensor-parallel GPUs on two nodes. Empty when the plan is sound."""
    problems = []
    per_gpu: dict[tuple[int, int], float] = {}
    for a in p.actors:
        if a.gpu is None:
            continue
        if not 0 <= a.gpu < p.cluster.gpus_per_node:
            problems.append(f"{a.name}: gpu {a.gpu} beyond cluster.gpus_per_node={p.cluster.gpus_per_node}")
        per_gpu[(a.node, a.gpu)] = per_gpu.get((a.node, a.gpu), 0.0) + a.gpu_fraction
    problems += [f"node {n} gpu {g}: fractions sum to {s:.2f} > 1" for (n, g), s in per_gpu.items() if s > 1 + 1e-9]
    for name, members in _nccl_groups(p).items():
        seen: dict[tuple[int, int], str] = {}
        for a in members:
            if a.gpu is None:
                continue
            key = (a.node, a.gpu)
            if key in seen:
                problems.append(f"NCCL group {name}: {seen[key]} and {a.name} share node {a.node} gpu {a.gpu}")
            seen[key] = a.name
    for w in {a.rank for a in p.actors if a.role == "rollout"}:
        nodes = {a.node for a in p.of("rollout", w)}
        if len(nodes) > 1:
            problems.append(f"rollout/{w}: tensor-parallel GPUs on nodes {sorted(nodes)}")
    return problems


def _nccl_groups(p: Plan) -> dict[str, list[ActorPlacement]]:
    """The process groups whose members must sit on distinct GPUs."""
    groups = {"learners": [a for a in p.actors if a.role == "learner"],
              "critics": [a for a in p.actors if a.role == "critic"]}
    for w in {a.rank for a in p.actors if a.role == "rollout"}:
        groups[f"rollout/{w} tensor-parallel"] = p.of("rollout", w)
    broadcast = [e.dst for e in p.weight_sync if e.method == "nccl_broadcast"]
    if broadcast:
        groups["weight sync"] = p.of("learner", 0) + [a for a in p.actors if a.name in broadcast]
    return groups


def dumps(p: Plan) -> str:
    """The plan's JSON object on one line (launch/grpo.py --plan prints it last)."""
    return json.dumps(p.to_json())


def as_dict(p: Plan) -> dict[str, Any]:
    return {"cluster": asdict(p.cluster), **p.to_json(), "engine_memory": p.engine_memory}


def plan_for_config(cfg, visible_gpus: int) -> Plan:
    """The plan of a loaded config: the roles its algorithm needs (a reference for a KL or ReMix term, a
    critic for PPO's values) on `cluster_for(cfg, visible_gpus)`."""
    import algorithms
    from algorithms import BatchField

    algo = algorithms.build_driver(cfg.algorithm.spec())
    return plan(cfg, cluster_for(cfg, visible_gpus), algo.needs(BatchField.REF_LOGP), algo.needs(BatchField.VALUES))
