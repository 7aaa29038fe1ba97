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


def _post(port, body: bytes, headers=None):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_beyond_loopback_needs_a_token_before_anything_binds():
    import pytest

    with pytest.raises(ValueError, match="beyond loopback\\) needs a bearer token"):
        make_server(rewards.load("exact_match"), "0.0.0.0", 0)


def test_token_caps_and_malformed_requests():
    import json

    server = make_server(rewards.load("exact_match"), "127.0.0.1", 0, token="s3cret", max_body=4096, max_batch=3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    ok = json.dumps({"completions": ["#### 4"], "columns": {"answer": ["4"]}}).encode()
    try:
        assert _post(port, ok)[0] == 401
        assert _post(port, ok, {"Authorization": "Bearer wrong"})[0] == 401
        assert _post(port, ok, {"Authorization": "Bearer s3cret"}) == (200, '{"rewards": [1.0]}')
        auth = {"Authorization": "Bearer s3cret"}
        code, text = _post(port, b'{"completions": [', auth)
        assert code == 400 and "not JSON" in text
        code, text = _post(port, json.dumps({"completions": ["a"] * 4}).encode(), auth)
        assert code == 413 and "batch of 4 completions is over the server's cap of 3" in text
        code, text = _post(port, json.dumps({"completions": ["x" * 5000]}).encode(), auth)
        assert code == 413 and "over the server's cap of 4096" in text
        code, text = _post(port, json.dumps({"completions": ["a", "b"], "columns": {"answer": ["1"]}}).encode(), auth)
        assert code == 400 and "`columns` must map names to lists of 2" in text
        # the remote reward sends the token
        remote = rewards.load("remote", url=f"http://127.0.0.1:{port}/score", token="s3cret", request_timeout_s=10)
        assert remote(["q"], ["#### 4"], answer=["4"]) == [1.0]
    finally:
        server.shutdown()
        server.server_close()
