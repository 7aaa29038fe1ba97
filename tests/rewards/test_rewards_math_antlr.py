"""The math reward scores the same whichever antlr4 runtime math-verify was installed with.

latex2sympy2_extended (math-verify's LaTeX parser) ships a parser generated for each supported
antlr4-python3-runtime (4.9.3, 4.11.0, 4.13.2) and picks one by the installed runtime's version.
4.9.3 is what omegaconf, and so every Hydra-based trainer, pins. Each battery entry's expectation
is worked out by hand; the battery runs here (the project's pinned runtime) and, in a subprocess
with another runtime first on ``sys.path``, under 4.9.3 and 4.11.0 (installed once into the pytest
cache with pip from the package registry; skipped, saying why, only when pip cannot install it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rewards.math_reward import MathReward

from _rewards_helpers import REPO

# (gold, completion, expected score)
BATTERY = [
    # LaTeX percents: 10\% is 10/100
    ("0.1", "\\boxed{10\\%}", 1.0),
    ("10\\%", "\\boxed{0.1}", 1.0),
    ("1/2", "so \\boxed{50\\%} of them", 1.0),
    ("0.25", "\\boxed{25 \\%}", 1.0),
    ("0.1", "\\boxed{20\\%}", 0.0),
    ("10\\%", "\\boxed{10\\%}", 1.0),
    # an escaped dollar is a currency sign, not a math delimiter
    ("\\$18.90", "\\boxed{18.90}", 1.0),
    ("\\$18.90", "The total is 18.90", 1.0),
    ("\\$18.90", "\\boxed{\\$18.90}", 1.0),
    ("\\$18.90", "\\boxed{18.91}", 0.0),
    ("\\$1,250", "\\boxed{1250}", 1.0),
    # forms that already worked, for the comparison across runtimes
    ("1/2", "\\boxed{\\frac{1}{2}}", 1.0),
    ("x^2+2x+1", "\\boxed{(x+1)^2}", 1.0),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}", 1.0),
    ("1000", "\\boxed{1,000}", 1.0),
    ("3", "\\boxed{4}", 0.0),
    ("$18.90$", "\\boxed{18.9}", 1.0),
]

_SCORE_SCRIPT = """
import json, sys
from importlib.metadata import version
from rewards.math_reward import MathReward
battery = json.loads(sys.argv[1])
reward = MathReward()
print(json.dumps({"antlr": version("antlr4-python3-runtime"),
                  "scores": [reward.score(c, g) for g, c, _ in battery]}))
"""


@pytest.mark.parametrize("gold,completion,want", BATTERY)
def test_battery_under_the_installed_runtime(gold, completion, want):
    assert MathReward().score(completion, gold) == want


def _runtime_dir(cache, version: str) -> str:
    """A directory holding antlr4-python3-runtime==version (pip --target, kept in the pytest cache)."""
    target = str(cache.mkdir(f"antlr4-python3-runtime-{version}"))
    if os.path.isdir(os.path.join(target, f"antlr4_python3_runtime-{version}.dist-info")):
        return target
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--upgrade", "--target", target, f"antlr4-python3-runtime=={version}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"pip could not install antlr4-python3-runtime=={version}: {exc}")
    if done.returncode != 0:
        pytest.skip(f"pip could not install antlr4-python3-runtime=={version}: {done.stderr.strip()[-300:]}")
    return target


@pytest.mark.parametrize("version", ["4.9.3", "4.11.0"])
def test_battery_under_other_supported_runtimes(version, request):
    target = _runtime_dir(request.config.cache, version)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([target, REPO])}
    done = subprocess.run([sys.executable, "-c", _SCORE_SCRIPT, json.dumps(BATTERY)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["antlr"] == version  # the runtime under test, not the project's
    got = {(g, c): s for (g, c, _), s in zip(BATTERY, out["scores"])}
    assert got == {(g, c): want for g, c, want in BATTERY}
