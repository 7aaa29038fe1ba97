"""The placement planner on simulated clusters (no Ray, no GPU): every actor placed, per GPU the fractions
sum to at most 1, no NCCL group with two members on one GPU, each node's GPUs within gpus_per_node; the
weight-sync method of each edge; the bundles a plan turns into; `launch/grpo.py --plan`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rltrain.config import load
from rltrain.workers.planner import Cluster, PlanError, check, plan, plan_for_config

ROOT = Path(__file__).resolve().parents[1]

SETUPS = {  # name -> overrides
    "default": [],
    "ppo": ["algorithm.preset=ppo"],
    "colocated": ["placement=colocated"],
    "no_reference": ["algorithm.regularizer.coef=0"],
    "reward_model": ["reward.functions=[{name: reward_model, params: {model_path: /rm}}]"],
    "ranks4_engines2": ["learner.num_ranks=4", "rollout.num_workers=2"],
    "tp2": ["learner.num_ranks=2", "rollout.num_workers=2", "rollout.vllm.tensor_parallel_size=2"],
    "ppo_critic2_tp2": ["algorithm.preset=ppo", "critic.num_ranks=2", "learner.num_ranks=4",
                        "rollout.num_workers=2", "rollout.vllm.tensor_parallel_size=2"],
}


def _plan(over: list[str], gpus: int, per_node: int = 8):
    return plan_for_config(load(None, over + [f"cluster.gpus={gpus}", f"cluster.gpus_per_node={per_node}"]), 0)


def _per_gpu(p) -> dict[tuple[int, int], float]:
    out: dict[tuple[int, int], float] = {}
    for a in p.actors:
        if a.gpu is not None:
            out[(a.node, a.gpu)] = out.get((a.node, a.gpu), 0.0) + a.gpu_fraction
    return out


@pytest.mark.parametrize("setup, gpus", list(itertools.product(SETUPS, [0, 1, 2, 4, 8, 16])))
def test_every_plan_is_sound_or_refused_naming_the_keys(setup, gpus):
    over = SETUPS[setup]
    try:
        p = _plan(over, gpus)
    except PlanError as e:  # too few GPUs for what was asked: the message names the key to change
        assert any(k in str(e) for k in ("learner.num_ranks", "rollout.num_workers", "tensor_parallel_size")), e
        return
    assert check(p) == [], p.table()
    cfg = load(None, over)
    roles = [a.role for a in p.actors]
    assert roles.count("learner") == cfg.learner.num_ranks
    assert roles.count("rollout") == cfg.rollout.num_workers * cfg.rollout.vllm.tensor_parallel_size
    assert ("critic" in roles) == ("ppo" in setup) and ("reference" in roles) == (setup != "no_reference")
    assert ("reward_model" in roles) == (setup == "reward_model")
    assert all(s <= 1.0 for s in _per_gpu(p).values())
    assert all(a.gpu is None for a in p.actors) == (gpus == 0)
    assert all(0 <= a.gpu < 8 for a in p.actors if a.gpu is not None)
    assert {e.dst for e in p.weight_sync} == {f"rollout/{w}" for w in range(cfg.rollout.num_workers)}
    payload = json.loads(json.dumps(p.to_json()))
    assert set(payload) == {"actors", "weight_sync"}
    assert all({"role", "rank", "node", "gpu", "gpu_fraction"} <= set(a) for a in payload["actors"])


def test_one_gpu_shares_it_in_thirds_and_syncs_by_cuda_ipc():
    """The default GRPO run (learner, engine, reference) on one GPU: one bundle, a third each; the engine
    shares learner rank 0's GPU, so the sync is CUDA IPC, never an NCCL group with two members there."""
    p = _plan([], 1)
    assert [(a.role, a.gpu, a.gpu_fraction) for a in p.actors] == [
        ("learner", 0, 0.33), ("rollout", 0, 0.33), ("reference", 0, 0.33)]
    assert [(e.src, e.dst, e.method) for e in p.weight_sync] == [("learner/0", "rollout/0", "cuda_ipc")]
    assert p.engine_memory == {0: 0.3}  # 0.9 of the GPU over its three tenants


def test_two_gpus_give_the_engine_its_own_and_the_reference_shares_the_learners():
    p = _plan([], 2)
    assert [(a.role, a.gpu, a.gpu_fraction) for a in p.actors] == [
        ("learner", 0, 0.5), ("rollout", 1, 1.0), ("reference", 0, 0.5)]
    assert p.weight_sync[0].method == "nccl_broadcast" and p.engine_memory == {0: 0.9}
    colocated = _plan(["placement=colocated"], 2)
    assert [(a.role, a.gpu, a.gpu_fraction, a.in_actor) for a in colocated.actors] == [
        ("learner", 0, 1.0, None), ("rollout", 0, 0.0, "learner/0"), ("reference", 1, 1.0, None)]
    assert colocated.weight_sync[0].method == "in_process"


def test_sixteen_gpus_on_two_nodes_keep_tensor_parallel_engines_on_one_node():
    p = _plan(["learner.num_ranks=8", "rollout.num_workers=4", "rollout.vllm.tensor_parallel_size=2"], 16)
    learners = [(a.node, a.gpu) for a in p.actors if a.role == "learner"]
    assert learners == [(0, g) for g in range(8)]
    engines = {w: [(a.node, a.gpu) for a in p.of("rollout", w)] for w in range(4)}
    assert engines == {w: [(1, 2 * w), (1, 2 * w + 1)] for w in range(4)}
    assert all(e.method == "nccl_broadcast" for e in p.weight_sync)
    # 8 ranks + 4 engines x 2 on 12 GPUs of 8 per node: the last engines share the learners' GPUs (hybrid)
    tight = _plan(["learner.num_ranks=8", "rollout.num_workers=4", "rollout.vllm.tensor_parallel_size=2"], 12)
    assert check(tight) == []
    assert {a.node for w in range(4) for a in tight.of("rollout", w) if a.tp_rank == 0} <= {0, 1}


def test_refusals_name_what_to_change():
    with pytest.raises(PlanError, match="learner.num_ranks=4 needs 4 GPUs"):
        _plan(["learner.num_ranks=4"], 2)
    with pytest.raises(PlanError, match="tensor_parallel_size=2 needs GPUs"):
        _plan(["rollout.vllm.tensor_parallel_size=2"], 0)
    with pytest.raises(PlanError, match="rollout.num_workers=3"):
        _plan(["rollout.num_workers=3"], 2)
    with pytest.raises(PlanError, match="colocated .* must be 1"):
        _plan(["placement=colocated", "rollout.vllm.tensor_parallel_size=2"], 2)


def test_check_catches_a_broken_plan():
    p = _plan(["rollout.num_workers=2"], 4)
    p.of("rollout", 1)[0].gpu = p.of("learner", 0)[0].gpu  # an engine of the NCCL broadcast on rank 0's GPU
    problems = check(p)
    assert any("NCCL group weight sync" in x for x in problems) and any("fractions sum" in x for x in problems)


def test_plan_bundles_cpu_and_gpu():
    from rltrain.workers.placement import Slot, plan_bundles

    cfg = load(None, ["resources.rollout={rollout_node: 1}"])
    bundles, slots = plan_bundles(plan(cfg, Cluster(0, 8), True, False), cfg, cpus=2)
    assert bundles == [{"CPU": 0.66}, {"CPU": 0.66, "rollout_node": 1}, {"CPU": 0.66}]
    assert slots[("rollout", 0)] == Slot(1, 0.66, 0.0)
    bundles, slots = plan_bundles(plan(cfg, Cluster(1, 8), True, False), cfg, cpus=3)
    assert bundles == [{"GPU": 1.0, "CPU": 1.0, "rollout_node": 1}]  # one GPU, three tenants
    assert slots[("reference", 0)] == Slot(0, 0.33, 0.33)
    bundles, slots = plan_bundles(plan(cfg, Cluster(2, 8), True, False), cfg, cpus=4)
    assert [b["GPU"] for b in bundles] == [1.0, 1.0] and slots[("rollout", 0)] == Slot(1, 1.0, 1.0)


def test_launch_plan_prints_a_table_then_the_json_and_starts_nothing():
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), "--plan", "cluster.gpus=8",
                           "algorithm.preset=ppo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("cluster: 8 GPUs, 8 per node") and "weight sync:" in proc.stdout
    last = json.loads(lines[-1])
    assert [a["role"] for a in last["actors"]] == ["learner", "rollout", "reference", "critic"]
    assert last["weight_sync"] == [{"from": "learner/0", "to": "rollout/0", "method": "nccl_broadcast"}]
    here = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), "--plan"], capture_output=True, text=True,
                          timeout=120)
    assert here.returncode == 0 and json.loads(here.stdout.strip().splitlines()[-1])["actors"][0]["gpu"] is None


def test_the_plans_edges_become_one_sync_strategy_per_method():
    from rltrain.workers.sync_strategies import BroadcastSync, CudaIpcSync, NcclBroadcastSync, PlannedSync

    mixed = PlannedSync(_plan(["rollout.num_workers=2"], 2))  # engine 0 on GPU 1 (NCCL), engine 1 on rank 0's GPU
    assert [(type(s), s.engines) for s in mixed.strategies] == [(NcclBroadcastSync, [0]), (CudaIpcSync, [1])]
    assert mixed.methods == "nccl_broadcast+cuda_ipc"
    cpu = PlannedSync(_plan(["rollout.num_workers=3"], 0))
    assert [(type(s), s.engines) for s in cpu.strategies] == [(BroadcastSync, [0, 1, 2])]
    assert PlannedSync(_plan(["placement=colocated"], 0)).methods == "in_process"
    assert PlannedSync(_plan(["sync.method=object_store"], 4)).methods == "object_store"


@pytest.mark.parametrize("gpus", [0, 2, 16])
def test_engine_hosting_is_read_from_the_plan(gpus):
    """The ActorSet's engine hosting is chosen once, from the plan: colocated, the one engine is inside
    learner rank 0 (its rollout group is that actor, and it cannot be replaced alone); separate, each engine
    is an actor of its own."""
    from rltrain.workers.colocated import ColocatedLearner
    from rltrain.workers.engine_hosting import EngineInLearner, EnginesInOwnActors, engine_hosting
    from rltrain.workers.learner import Learner

    inside = engine_hosting(_plan(["placement=colocated", "learner.num_ranks=2"], gpus))
    assert isinstance(inside, EngineInLearner) and not inside.replaceable
    assert inside.learner_rank(0, lambda w: {"engine": w}) == (ColocatedLearner, {"worker": {"engine": 0}})
    assert inside.learner_rank(1, lambda w: {"engine": w}) == (Learner, {})
    assert inside.rollout_actors(["rank0", "rank1"], lambda w: f"worker{w}", 1) == ["rank0"]
    own = engine_hosting(_plan(["rollout.num_workers=2"], gpus))
    assert isinstance(own, EnginesInOwnActors) and own.replaceable
    assert own.learner_rank(0, lambda w: {"engine": w}) == (Learner, {})
    assert own.rollout_actors(["rank0"], lambda w: f"worker{w}", 2) == ["worker0", "worker1"]
