"""A run on a simulated two-node Ray cluster (`ray.cluster_utils.Cluster`): learner ranks and the
reference on the head node (custom resource `learner_node`), the rollout worker on the second
(`rollout_node`). Run as a script by tests/e2e/test_two_nodes.py, in a process of its own (its Ray
session is not the test session's); prints one JSON line of what it saw."""

from __future__ import annotations

import json
import sys

import ray
import torch
from ray.cluster_utils import Cluster

from rltrain.config import load
from rltrain.driver.trainer import Trainer
from rltrain.workers.placement import bundle_nodes


def _engines_equal_learner(trainer: Trainer) -> bool:
    learner = trainer.actors.learners.call("policy_state")[0]
    for worker in trainer.actors.workers:
        engine = ray.get(worker.engine_weights.remote())
        if not all(torch.equal(t, learner[name]) for name, t in engine.items()):
            return False
    return True


def _nodes_by_role(trainer: Trainer) -> dict[str, list[str]]:
    where = bundle_nodes(trainer.actors.pg)
    out: dict[str, list[str]] = {}
    for role, i in trainer.actors.roles:
        out.setdefault(role, []).append(where[trainer.actors.slots[(role, i)].bundle])
    return out


def main(model: str, out_dir: str) -> None:
    loopback = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 3, "resources": {"learner_node": 3}, **loopback})
    rollout_node = cluster.add_node(num_cpus=2, resources={"rollout_node": 2}, **loopback)
    ray.init(address=cluster.address, log_to_driver=False, _node_ip_address="127.0.0.1")
    cfg = load(None, {
        "model.path": model, "rollout.engine": "transformers", "rollout.num_workers": 1,
        "rollout.prompts_per_step": 4, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "learner.num_ranks": 2, "learner.zero_stage": 2, "learner.lr": 3e-3, "learner.micro_batch_size": 8,
        "algorithm.regularizer.coef": 0.01, "sync.method": "collective",
        "resources.learner": {"learner_node": 1}, "resources.reference": {"learner_node": 1},
        "resources.rollout": {"rollout_node": 1},
        "trainer.steps": 3, "trainer.output_dir": out_dir, "trainer.run_name": "two_nodes",
        "eval.n_samples": 2, "eval.max_prompts": 4, "logging.wandb": False, "logging.report": False,
        "data.n_train": 100, "data.n_test": 8,
    })
    trainer = Trainer(cfg)
    seen: dict = {"head": cluster.head_node.node_id, "rollout_node": rollout_node.node_id,
                  "roles": _nodes_by_role(trainer), "sync": trainer.sync.methods}
    trainer.step()
    seen["synced_after_step_1"] = _engines_equal_learner(trainer)
    ray.kill(trainer.actors.workers[0])  # the worker on the rollout node dies
    trainer.replace_worker(0)
    seen["roles_after_replace"] = _nodes_by_role(trainer)
    metrics = trainer.step()
    seen["synced_after_step_2"] = _engines_equal_learner(trainer)
    seen["metrics"] = {k: metrics[k] for k in ("sync/method", "sync/bytes", "rollout/reward_mean")}
    seen["checkpoint"] = str(trainer.save())
    seen["version"] = trainer.version
    trainer.close()
    ray.shutdown()
    cluster.shutdown()
    print("RESULT " + json.dumps(seen), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
