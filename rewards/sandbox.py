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

Test results come back on a pipe of their own, never in the program's output, and hold no verdict
of the sandbox's making where it can be avoided: for checkable assert tests the sandbox only
evaluates the probe expressions and returns their values as plain data; the comparison with the
expected values (which never enter the sandbox) happens in the caller (``_asserts.py``).

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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from ._plain import from_plain
from ._trusted_eval import ProbeFailed

__all__ = ["ProbeRun", "SandboxResult", "run_probes", "run_python", "sandbox_layers"]

_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_runner.py")
_NOBODY = 65534


@dataclasses.dataclass
class SandboxResult:
    """What a sandboxed run did.

    ``messages`` are the JSON objects read from the results pipe (test and probe modes). With
    ``tests``, ``passed`` holds the indices of tests reported passed exactly once (a second
    report about a test, true or forged, fails it) and ``failed`` the others.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    passed: list[int] = dataclasses.field(default_factory=list)
    failed: list[int] = dataclasses.field(default_factory=list)
    load_failed: bool = False
    messages: list[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ProbeRun:
    """Probe values per snippet (each a value or a ProbeFailed) and the run that produced them."""

    values: list[list[Any]]
    loaded: bool
    result: SandboxResult


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


class _PipeReader:
    """Reads the results pipe in a thread (so a chatty run cannot block on a full pipe), up to a limit."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit, self.data, self.truncated = fd, limit, bytearray(), False
        self.thread = threading.Thread(target=self._run, daemon=True, name="sandbox-results")
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return
                room = self.limit - len(self.data)
                if len(chunk) > room:
                    self.truncated = True
                self.data += chunk[: max(0, room)]  # past the limit: drained, not kept
        except OSError:
            return
        finally:
            os.close(self.fd)

    def messages(self, wait_s: float) -> list[dict]:
        """The complete lines read so far (after waiting up to ``wait_s`` for the writers to exit)."""
        self.thread.join(wait_s)
        out = []
        for line in bytes(self.data).split(b"\n")[:-1]:  # a last line without "\n" was cut off
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(msg, dict):
                out.append(msg)
        return out


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
    snippets: list[dict] | None = None,
    max_output_bytes: int = 1 << 20,
    python: str | None = None,
) -> SandboxResult:
    """Run ``program`` (Python source) in the sandbox and return what happened.

    Without ``tests`` or ``snippets`` the program runs as a script with ``stdin``. With ``tests``
    (Python snippets such as ``assert f(2) == 4``) the program is loaded first and each test runs
    in its namespace; ``passed``/``failed`` list the test indices (the program can forge these:
    use :func:`run_probes` for tests the caller can check). With ``snippets`` (``{"setup":
    [imports], "probes": [expressions]}``) the program is loaded and each probe's value comes back
    in ``messages``. ``timeout_s`` is wall-clock for the whole run; output beyond
    ``max_output_bytes`` is cut off (and a program that writes more to a file is killed by
    RLIMIT_FSIZE); so are results beyond it.
    """
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="rewards-sbx-")
    layers = list(sandbox_layers())
    dropping = "setpriv" in layers
    write_fd = -1
    try:
        prog_path = os.path.join(workdir, "main.py")
        with open(prog_path, "w", encoding="utf-8", errors="replace") as f:
            f.write(program)
        mode = "probes" if snippets is not None else "asserts" if tests is not None else "script"
        read_fd, write_fd = os.pipe()
        reader = _PipeReader(read_fd, max_output_bytes)
        cfg = {
            "program": prog_path,
            "mode": mode,
            "tests": list(tests or []),
            "snippets": list(snippets or []),
            "result_fd": write_fd,
            "mem_bytes": int(memory_mb) * 1024 * 1024,
            "cpu_s": int(timeout_s) + 1,
            "fsize_bytes": int(max_output_bytes) * 2,
            "nofile": 64,
            "nproc": 256 if dropping or os.geteuid() != 0 else None,
        }
        cfg_path = os.path.join(workdir, "cfg.json")
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
                start_new_session=True, close_fds=True, pass_fds=(write_fd,),
            )
        except OSError as exc:
            return SandboxResult(None, "", f"could not start sandbox: {exc}", False, time.monotonic() - start)
        finally:
            out_f.close()
            err_f.close()
            os.close(write_fd)  # the run holds the only write end: its exit ends the reader
            write_fd = -1
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
        result.messages = reader.messages(wait_s=5.0)
        if tests is not None:
            result.passed, result.failed, result.load_failed = _test_marks(result.messages, len(tests))
        return result
    finally:
        if write_fd >= 0:  # failed before the run started
            os.close(write_fd)
        shutil.rmtree(workdir, ignore_errors=True)


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _load_failed(messages: list[dict]) -> bool:
    """Whether the run said the program failed to load (or never said it loaded)."""
    loads = [m["load"] for m in messages if "load" in m]
    return loads[:1] != ["ok"]


def _test_marks(messages: list[dict], n: int) -> tuple[list[int], list[int], bool]:
    """(passed, failed, load_failed) for ``n`` tests: passed once and only once, else failed."""
    reports: dict[int, list] = {}
    for m in messages:
        i = m.get("test")
        if type(i) is int and 0 <= i < n:
            reports.setdefault(i, []).append(m.get("ok"))
    load_failed = _load_failed(messages)
    passed = [i for i in range(n) if not load_failed and reports.get(i) == [True]]
    return passed, [i for i in range(n) if i not in passed], load_failed


def run_probes(program: str, snippets: list[dict], **kwargs: Any) -> ProbeRun:
    """Load ``program`` in the sandbox and evaluate each snippet's probes (see :func:`run_python`).

    ``values[s][p]`` is probe p of snippet s decoded from plain data, or a ProbeFailed when it
    raised, returned something not plain data, its snippet's imports failed, or the run reported
    it other than exactly once (a forged second report fails it).
    """
    res = run_python(program, snippets=snippets, **kwargs)
    got: dict[tuple[int, int], list] = {}
    setup_failed: set[int] = set()
    for m in res.messages:
        s, p = m.get("s"), m.get("p")
        if type(s) is int and "setup" in m:
            setup_failed.add(s)
        elif type(s) is int and type(p) is int:
            got.setdefault((s, p), []).append(m)
    loaded = not _load_failed(res.messages)
    values: list[list[Any]] = []
    for s, snippet in enumerate(snippets):
        row: list[Any] = []
        for p in range(len(snippet["probes"])):
            reports = got.get((s, p), [])
            if not loaded or s in setup_failed:
                row.append(ProbeFailed("the program or the test's imports failed to load"))
            elif len(reports) != 1:
                row.append(ProbeFailed(f"{len(reports)} reports"))
            elif "v" not in reports[0]:
                row.append(ProbeFailed(f"raised {reports[0].get('e')}"))
            else:
                try:
                    row.append(from_plain(reports[0]["v"]))
                except (ValueError, RecursionError) as exc:
                    row.append(ProbeFailed(f"not plain data: {exc}"))
        values.append(row)
    return ProbeRun(values, loaded, res)
