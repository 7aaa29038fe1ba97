"""The HTTP reward server and the remote reward (127.0.0.1 only, servers started here)."""

import os
import re
import subprocess
import sys
import threading
import time

import rewards
from _rewards_helpers import REPO
from rewards.serve import make_server


def _serve_in_thread(reward):
    server = make_server(reward, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_remote_roundtrip_in_process():
    server = _serve_in_thread(rewards.load("exact_match"))
    try:
        remote = rewards.load("remote", url=f"http://127.0.0.1:{server.server_port}/score", request_timeout_s=10)
        out = remote(["q"] * 3, ["#### 4", "#### 5", [{"role": "assistant", "content": "#### 4"}]], answer=["4", "4", "4"], trainer_state=object())
        assert out == [1.0, 0.0, 1.0]
    finally:
        server.shutdown()
        server.server_close()


def test_remote_down_or_slow_is_fallback_not_exception():
    down = rewards.load("remote", url="http://127.0.0.1:9/score", request_timeout_s=1, fallback=0.0)
    assert down(["q", "q"], ["a", "b"]) == [0.0, 0.0]

    def slow(prompts, completions, **kw):
        time.sleep(3)
        return [1.0] * len(completions)

    server = _serve_in_thread(rewards.load(slow, isolation="inline"))
    try:
        remote = rewards.load("remote", url=f"http://127.0.0.1:{server.server_port}/score", request_timeout_s=0.5)
        t0 = time.monotonic()
        assert remote(["q"], ["a"]) == [None]
        assert time.monotonic() - t0 < 2.5
    finally:
        server.shutdown()
        server.server_close()


def test_serve_module_cli():
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewards.serve", "--reward", "exact_match", "--param", "extract=\"hashes\"", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)/score", line).group(1))
        remote = rewards.load("remote", url=f"http://127.0.0.1:{port}/score", request_timeout_s=10)
        assert remote(["q", "q"], ["#### 7", "The answer is 7"], answer=["7", "7"]) == [1.0, 0.0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
