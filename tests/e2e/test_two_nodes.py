"""More than one machine: a run on a simulated two-node Ray cluster with the learner ranks and the
reference on one node and the rollout worker on the other (custom node resources,
`resources.<role>`). Real raylets, actors, DeepSpeed over two ranks, the collective weight sync
through a TCP store at learner rank 0's node address, a rollout worker replaced on its node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parent / "two_node_run.py"


def test_learners_on_one_node_the_rollout_worker_on_the_other(tmp_path, default_model):
    # a cluster of its own, not the test session's; every node on 127.0.0.1: without the second
    # variable ray.init resolves "127.0.0.1" to this machine's outward address before connecting
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run([sys.executable, str(SCRIPT), default_model, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = json.loads(lines[-1][len("RESULT "):])
    head, other = seen["head"], seen["rollout_node"]
    for roles in (seen["roles"], seen["roles_after_replace"]):
        assert roles["learner"] == [head, head] and roles["reference"] == [head]
        assert roles["rollout"] == [other]
    assert seen["sync"] == "gloo_broadcast" and seen["metrics"]["sync/method"] == "gloo_broadcast"
    assert seen["synced_after_step_1"] and seen["synced_after_step_2"]
    assert seen["version"] == 2 and seen["metrics"]["sync/bytes"] > 0
    assert (Path(seen["checkpoint"]) / "manifest.json").exists()
    assert "[rltrain] placement: learner 0: node" in proc.stdout
