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


def _attempt(body: str) -> str:
    """A program that tries ``body``, prints ESCAPED if it got through, and then solves the task."""
    indented = "\n".join("    " + line for line in body.splitlines())
    return (
        "try:\n" + indented + "\n    print('ESCAPED')\nexcept BaseException as e:\n    print('blocked', type(e).__name__)\n"
        "def add(a, b):\n    return a + b\n"
    )


def _adversarial_corpus(secret_file: str, outside: str, port: int) -> dict[str, str]:
    return {
        "fork bomb": "import os\nwhile True:\n    os.fork()",
        "subprocess": "import subprocess\nprint(subprocess.run(['id'], capture_output=True).stdout)",
        "fork_exec below subprocess": "import _posixsubprocess",
        "multiprocessing": "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
        "os.system": "import os\nos.system('touch ' + " + repr(outside) + ")",
        "posix_spawn": "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'id'], {})",
        "ctypes libc system": "import ctypes\nctypes.CDLL(None).system(b'id')",
        "subinterpreter": "import _xxsubinterpreters",
        "a secret file": "print(open(" + repr(secret_file) + ").read())",
        "/etc/shadow": "print(open('/etc/shadow').read())",
        "Ray's auth token": "import os\nprint(open(os.path.expanduser('~root/.ray/auth_token')).read())",
        "parent's environment": "import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())",
        "pid 1's command line": "print(open('/proc/1/cmdline', 'rb').read())",
        "symlink to the secret": "import os\nos.symlink(" + repr(secret_file) + ", 'link')\nprint(open('link').read())",
        "hard link to the secret": "import os\nos.link(" + repr(secret_file) + ", 'hard')\nprint(open('hard').read())",
        "write outside": "open(" + repr(outside) + ", 'w').write('x')",
        "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "connect to 127.0.0.1": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "raw _socket": f"import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))",
        # the audit hook is Python in the program's interpreter: loosen its policy, then spawn a shell
        "the hook's policy, found through gc": (
            "import gc, os\nfor o in gc.get_objects():\n    if getattr(o, '__name__', '') == 'hook':\n"
            "        for c in o.__closure__ or ():\n            if isinstance(c.cell_contents, set):\n"
            "                c.cell_contents.clear()\nos.system('touch ' + " + repr(outside) + ")"),
        "the hook's module list, found through frames": (
            "import sys\nf = sys._getframe()\nwhile f is not None:\n    if '_BLOCKED_MODULES' in f.f_globals:\n"
            "        f.f_globals['_BLOCKED_MODULES'] = set()\n        f.f_globals['_READABLE_FILES'] = {'/etc/shadow'}\n"
            "    f = f.f_back\nimport _posixsubprocess"),
        "the hook's path check, through posixpath": (
            "import os, posixpath\nhere = os.getcwd()\n"
            "posixpath._joinrealpath = lambda path, rest, strict, seen: (here + '/x', True)\n"
            "print(open(" + repr(secret_file) + ").read())"),
    }


def test_adversarial_corpus_nothing_escapes_each_scores(code_reward, local_server, tmp_path, monkeypatch):
    """The reliability issue's corpus: process creation, secrets, /proc, writes, ctypes, network.

    Each program tries one escape, then solves the task. Nothing may get through, and each must
    come back as a score (the ones that catch the refusal solve the task and score 1.0).
    """
    secret = "s3cr3t-" + os.urandom(8).hex()
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    monkeypatch.setenv("RLTRAIN_SANDBOX_SECRET", secret)
    outside = str(tmp_path / "escaped.txt")
    corpus = _adversarial_corpus(str(secret_file), outside, local_server.port)
    for name, body in corpus.items():
        run = run_python(_attempt(body) + "import os\nprint(os.environ)", timeout_s=5)
        assert "ESCAPED" not in run.stdout, (name, run.stdout)
        assert secret not in run.stdout + run.stderr, name
    programs = ["```python\n" + _attempt(body) + "```" for body in corpus.values()]
    scores = code_reward(["p"] * len(programs), programs, tests=[ADD_TESTS] * len(programs))
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores), dict(zip(corpus, scores))
    assert dict(zip(corpus, scores))["a secret file"] == 1.0  # refused, caught, and the task solved
    assert not os.path.exists(outside)
    time.sleep(0.3)
    assert local_server.connections == 0
