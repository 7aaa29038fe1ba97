"""The code reward and its sandbox, on correct, wrong and hostile programs."""

import os
import time

import pytest

import rewards
from rewards.code_reward import extract_code
from rewards.sandbox import run_python, sandbox_layers

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]
IO_TESTS = {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}


@pytest.fixture(scope="module")
def code_reward():
    return rewards.load("code", run_timeout_s=2.0, memory_mb=256, workers=2)


def test_extract_code():
    assert extract_code("text\n```python\nx = 1\n```\nmore\n```py\ny = 2\n```") == "y = 2\n"
    assert extract_code("x = 1") == "x = 1"
    assert extract_code("no code", require_fence=True) == ""


def test_correct_wrong_and_partial(code_reward):
    comps = [
        "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\ndef add(a, b):\n    return 15 if a == 10 else a + b + (a < 0)\n```",
        "```python\ndef add(a, b) return\n```",  # syntax error
        "",
    ]
    out = code_reward(["p"] * 5, comps, tests=[ADD_TESTS] * 5)
    assert out[0] == 1.0
    assert out[1] == 0.0  # a - b fails all three
    assert out[2] == pytest.approx(2 / 3)
    assert out[3] == 0.0 and out[4] == 0.0


def test_stdin_stdout_cases(code_reward):
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    bad = "```python\nprint(3)\n```"
    cases = [{"input": i, "output": o} for i, o in zip(IO_TESTS["inputs"], IO_TESTS["outputs"])]
    assert code_reward(["p"] * 3, [good, bad, good], tests=[IO_TESTS, IO_TESTS, cases]) == [1.0, 0.5, 1.0]
    assert code_reward(["p"], [good], tests=[None]) == [None]


HOSTILE = {
    "loops_forever": "```python\ndef add(a, b):\n    while True:\n        pass\n```",
    "forks": "```python\nimport os\nwhile True:\n    os.fork()\n```",
    "fork_via_subprocess": "```python\nimport subprocess\nsubprocess.run(['sh', '-c', ':(){ :|:& };:'])\n```",
    "allocates": "```python\nx = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))\n```",
    "prints_forever": "```python\nwhile True:\n    print('x' * 10000)\n```",
    "exits_early": "```python\nimport sys\nsys.exit(0)\n```",
    "forges_results": "```python\nfor i in range(3):\n    print('PASS', i)\n```",
}


def test_hostile_programs_score_within_limits(code_reward):
    names = list(HOSTILE)
    t0 = time.monotonic()
    out = code_reward(["p"] * len(names), [HOSTILE[n] for n in names], tests=[ADD_TESTS] * len(names))
    took = time.monotonic() - t0
    assert dict(zip(names, out)) == {n: 0.0 for n in names}
    # 7 programs, 2 at a time, each bounded by run_timeout_s=2 (plus start-up)
    assert took < 20, took


def test_no_network_even_to_localhost(code_reward, local_server):
    prog = (
        "```python\nimport socket\n"
        f"s = socket.create_connection(('127.0.0.1', {local_server.port}), timeout=1)\n"
        "def add(a, b):\n    return a + b\n```"
    )
    assert code_reward(["p"], [prog], tests=[ADD_TESTS]) == [0.0]
    # and below the audit hook, through the raw _socket module
    raw = run_python(
        f"import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(1)\ns.connect(('127.0.0.1', {local_server.port}))\nprint('connected')",
        timeout_s=3,
    )
    assert "connected" not in raw.stdout
    time.sleep(0.3)
    assert local_server.connections == 0


def test_no_writes_outside_the_sandbox(code_reward, tmp_path):
    target = tmp_path / "escaped.txt"
    progs = [
        f"```python\nopen({str(target)!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n```",
        f"```python\nimport os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')\ndef add(a, b):\n    return a + b\n```",
        "```python\nimport os\nos.makedirs('/tmp/rewards-escape-test', exist_ok=True)\ndef add(a, b):\n    return a + b\n```",
        "```python\nopen('inside.txt', 'w').write('fine')\ndef add(a, b):\n    return a + b\n```",
    ]
    out = code_reward(["p"] * 4, progs, tests=[ADD_TESTS] * 4)
    assert out == [0.0, 0.0, 0.0, 1.0]
    assert not target.exists()
    assert not os.path.exists("/tmp/rewards-escape-test")


def test_sandbox_result_fields():
    r = run_python("import os\nprint(os.getcwd() != '/', input())", stdin="hi\n", timeout_s=5)
    assert r.returncode == 0 and r.stdout.strip() == "True hi" and not r.timed_out
    t0 = time.monotonic()
    r = run_python("while True: pass", timeout_s=1)
    assert r.timed_out and time.monotonic() - t0 < 4
    assert isinstance(sandbox_layers(), tuple)


def _outer_layers_only(code):
    """Run ``code`` under the namespace/privilege layers alone (no audit hook, no rlimits)."""
    import subprocess
    import sys

    return subprocess.run(list(sandbox_layers()) + [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=20)


@pytest.mark.skipif("unshare" not in sandbox_layers(), reason="no network namespace on this machine")
def test_network_namespace_layer_alone_blocks_localhost(local_server):
    out = _outer_layers_only(
        f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {local_server.port}), timeout=1)\n    print('connected')\n"
        "except OSError as e:\n    print('blocked', e)"
    )
    assert "blocked" in out.stdout, out.stdout + out.stderr
    time.sleep(0.2)
    assert local_server.connections == 0


@pytest.mark.skipif("setpriv" not in sandbox_layers(), reason="not root: no privilege drop layer")
def test_privilege_drop_layer_alone_blocks_writes(tmp_path):
    target = tmp_path / "escaped.txt"
    out = _outer_layers_only(f"open({str(target)!r}, 'w').write('x')")
    assert out.returncode != 0 and "Permission" in out.stderr
    assert not target.exists()
