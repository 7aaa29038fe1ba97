"""Shared fixtures for the rewards tests (no network, no downloads, 2-core CPU)."""

from __future__ import annotations

import os
import socket
import sys
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:  # run from any directory, whatever state the editable install is in
    sys.path.insert(0, REPO)

import rewards  # noqa: E402


@pytest.fixture(scope="session")
def math_reward():
    """One guarded math reward for the session (its worker processes start once)."""
    fn = rewards.load("math", timeout_s=10.0, workers=2)
    yield fn
    fn.close()


class ConnectionCounter:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def local_server():
    srv = ConnectionCounter()
    yield srv
    srv.close()


# ---------------------------------------------------------------------------------------------
# The TRL GRPOTrainer step runs in its own interpreter (~20 s of imports on 2 cores). When that
# test is collected, start it right away so it runs beside the other tests; the test collects it.
TRL_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_rewards_trl_step.py")
_TRL_PROC: dict = {}


def start_trl_step():
    """Start (once) the TRL step subprocess; return the Popen."""
    import subprocess
    import tempfile

    if "proc" not in _TRL_PROC:
        env = {**os.environ, "PYTHONPATH": REPO, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
        out = tempfile.TemporaryFile(mode="w+")
        _TRL_PROC["out"] = out
        _TRL_PROC["proc"] = subprocess.Popen([sys.executable, TRL_SCRIPT], stdout=out, stderr=subprocess.STDOUT,
                                             text=True, env=env, cwd=REPO)
    return _TRL_PROC["proc"], _TRL_PROC["out"]


@pytest.fixture
def trl_step():
    """(Popen, output file) of the TRL step subprocess."""
    return start_trl_step()


def pytest_collection_modifyitems(config, items):
    if any("test_grpo_trainer_one_step" in item.nodeid for item in items):
        start_trl_step()


def pytest_sessionfinish(session, exitstatus):
    proc = _TRL_PROC.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
