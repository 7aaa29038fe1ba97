"""Run untrusted Python in a sandboxed subprocess.

Layers, outermost first:

1. ``unshare -n``: a fresh network namespace with no interfaces up, so no connection can leave
   the process — not even to 127.0.0.1 (used when ``unshare`` works here; probed once).
2. When running as root: ``setpriv`` drops to uid/gid ``nobody`` with only CAP_DAC_READ_SEARCH
   (it can read the Python install, write nothing that is not world-writable) and no new privileges.
3. Resource limits: address space, CPU seconds, file size, open files, processes (when not root).
4. An audit hook in the interpreter (``_sandbox_runner.py``): sockets, subprocesses, fork, exec,
   signals and ctypes raise, and so does importing modules below the hook (``_posixsubprocess``,
   subinterpreters); opening for write, removing or renaming outside the sandbox directory
   raises; reading outside it and the Python installation raises (the kept CAP_DAC_READ_SEARCH
   would otherwise read any file).
5. Its own temporary directory as cwd, HOME and TMPDIR; a minimal environment; a new session
   (process group) that is SIGKILLed as a whole on timeout; the directory is removed afterwards.

Not a security boundary against a determined attacker with a kernel exploit; it is meant to
contain what RL policies actually produce: infinite loops, fork bombs, memory hogs, stray file
writes and network calls. Every call returns a :class:`SandboxResult`; none raises for anything
the program does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

__all__ = ["SandboxResult", "run_python", "sandbox_layers"]

_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_runner.py")
_NOBODY = 65534


@dataclasses.dataclass
class SandboxResult:
    """What a sandboxed run did. ``passed`` holds test indices that passed ("asserts" mode)."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    passed: list[int] = dataclasses.field(default_factory=list)
    failed: list[int] = dataclasses.field(default_factory=list)
    load_failed: bool = False


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=1)
def sandbox_layers() -> tuple[str, ...]:
    """The command prefix for this machine (network namespace, privilege drop), probed once."""
    prefix: list[str] = []
    if shutil.which("unshare"):
        if os.geteuid() == 0 and _works(["unshare", "-n", "true"]):
            prefix = ["unshare", "-n"]
        elif _works(["unshare", "-r", "-n", "true"]):
            prefix = ["unshare", "-r", "-n"]
    if os.geteuid() == 0 and prefix[:2] == ["unshare", "-n"] and shutil.which("setpriv"):
        drop = [
            "setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all,+dac_read_search", "--ambient-caps=-all,+dac_read_search",
            "--bounding-set=-all,+dac_read_search",
        ]
        if _works(prefix + drop + ["true"]):
            prefix += drop
    return tuple(prefix)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def run_python(
    program: str,
    *,
    stdin: str = "",
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    tests: list[str] | None = None,
    max_output_bytes: int = 1 << 20,
    python: str | None = None,
) -> SandboxResult:
    """Run ``program`` (Python source) in the sandbox and return what happened.

    Without ``tests`` the program runs as a script with ``stdin``. With ``tests`` (a list of
    Python snippets such as ``assert f(2) == 4``) the program is loaded first and each test runs
    in its namespace; ``passed``/``failed`` list the test indices. ``timeout_s`` is wall-clock for
    the whole run; output beyond ``max_output_bytes`` is cut off (and a program that writes more
    to a file is killed by RLIMIT_FSIZE).
    """
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="rewards-sbx-")
    nonce = secrets.token_hex(16)
    layers = list(sandbox_layers())
    dropping = "setpriv" in layers
    try:
        prog_path = os.path.join(workdir, "main.py")
        with open(prog_path, "w", encoding="utf-8", errors="replace") as f:
            f.write(program)
        cfg = {
            "program": prog_path,
            "mode": "asserts" if tests is not None else "script",
            "tests": list(tests or []),
            "nonce": nonce,
            "mem_bytes": int(memory_mb) * 1024 * 1024,
            "cpu_s": int(timeout_s) + 1,
            "fsize_bytes": int(max_output_bytes) * 2,
            "nofile": 64,
            "nproc": 256 if dropping or os.geteuid() != 0 else None,
        }
        cfg_path = os.path.join(workdir, f"cfg-{nonce}.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        out_path = os.path.join(workdir, ".stdout")
        err_path = os.path.join(workdir, ".stderr")
        out_f = open(out_path, "wb")
        err_f = open(err_path, "wb")
        if dropping:
            for root, dirs, files in os.walk(workdir):
                for name in dirs + files + [""]:
                    os.chown(os.path.join(root, name), _NOBODY, _NOBODY)
        env = {
            "PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }
        cmd = layers + [python or sys.executable, "-I", "-B", _RUNNER, cfg_path]
        timed_out = False
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=out_f, stderr=err_f, cwd=workdir, env=env,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            return SandboxResult(None, "", f"could not start sandbox: {exc}", False, time.monotonic() - start)
        finally:
            out_f.close()
            err_f.close()
        try:
            proc.communicate(input=(stdin or "").encode("utf-8", "replace"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except (OSError, ValueError):  # e.g. the program closed stdin early: wait for it anyway
            try:
                proc.wait(timeout=max(0.01, timeout_s - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
        _kill_group(proc)  # ends the program on timeout, and anything it left behind otherwise
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        stdout = _read(out_path, max_output_bytes)
        stderr = _read(err_path, max_output_bytes)
        result = SandboxResult(proc.returncode, stdout, stderr, timed_out, time.monotonic() - start)
        if tests is not None:
            result.stdout, result.passed, result.failed, result.load_failed = _parse_marks(stdout, nonce)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _parse_marks(stdout: str, nonce: str) -> tuple[str, list[int], list[int], bool]:
    passed, failed, load_failed, rest = [], [], False, []
    for line in stdout.splitlines():
        if line.startswith(nonce + " "):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("PASS", "FAIL") and parts[2].isdigit():
                (passed if parts[1] == "PASS" else failed).append(int(parts[2]))
            elif len(parts) >= 2 and parts[1] == "LOADFAIL":
                load_failed = True
        else:
            rest.append(line)
    return "\n".join(rest), passed, failed, load_failed
