"""`import rewards` (and loading the light rewards) pulls in no heavy or trainer modules."""

import os
import subprocess
import sys

from _rewards_helpers import REPO

FORBIDDEN = ("torch", "ray", "vllm", "deepspeed", "rltrain", "algorithms", "transformers", "math_verify", "sympy")


def test_import_rewards_is_light():
    code = (
        "import sys, rewards\n"
        "rewards.load('math'); rewards.load('code'); rewards.load('reward_model', model_path='/nonexistent')\n"
        "rewards.load('remote', url='http://127.0.0.1:9/score'); rewards.load('format')\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
