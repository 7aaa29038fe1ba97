"""A small pool of killable worker processes that score one sample per task.

Unlike ``concurrent.futures``, a task that overruns its deadline is ended by killing its worker
(and the worker's whole process group); the worker is replaced and the other tasks go on. This is
the only way to bound a verifier stuck inside C code that holds the GIL (a huge big-integer power
in sympy, a catastrophic regex), which neither threads nor ``signal.alarm`` can interrupt.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable

__all__ = ["ProcessPool"]

_LIVE_POOLS: "weakref.WeakSet[ProcessPool]" = weakref.WeakSet()


def _serve(conn: Any, fn: Callable[..., Any]) -> None:
    """Worker loop: receive (index, args, kwargs), reply (index, (status, value))."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, args, kwargs = msg
        try:
            out: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a verifier's failure is a result, not a crash
            out = ("err", f"{type(exc).__name__}: {exc}"[:2000])
        try:
            conn.send((index, out))
        except Exception as exc:  # unpicklable result
            conn.send((index, ("err", f"result not picklable: {type(exc).__name__}: {exc}"[:2000])))


def worker_main(fd: int) -> None:
    """Entry point of a worker subprocess (``python -c ...`` with the socket's fd inherited)."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which cleans up
    conn = Connection(fd)
    sys_path, payload, memory_mb = conn.recv()
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        import pickle

        fn = pickle.loads(payload)
        if memory_mb:
            import resource

            limit = int(memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        warmup = getattr(getattr(fn, "func", fn), "warmup", None)  # functools.partial(_call_one, reward)
        if warmup is None and getattr(fn, "args", None):
            warmup = getattr(fn.args[0], "warmup", None)
        if callable(warmup):
            warmup()
    except BaseException as exc:  # noqa: BLE001
        conn.send(("failed", f"{type(exc).__name__}: {exc}"[:2000]))
        return
    conn.send(("ready", None))
    _serve(conn, fn)


class _Worker:
    """One worker: a fresh ``python`` subprocess in its own session, talking over a socketpair.

    A fresh interpreter (not fork/forkserver) because the parent may be a trainer with CUDA,
    threads and a ``__main__`` that must not be re-imported.
    """

    def __init__(self, payload: bytes, memory_mb: int | None) -> None:
        from multiprocessing.connection import Connection

        parent_sock, child_sock = socket.socketpair()
        rewards_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([rewards_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.setdefault("OMP_NUM_THREADS", "1")
        code = f"from rewards._pool import worker_main; worker_main({child_sock.fileno()})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(child_sock.fileno(),), env=env,
            start_new_session=True, stdin=subprocess.DEVNULL,
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send((list(sys.path), payload, memory_mb))
        self.started = time.monotonic()

    def take_ready(self) -> str | None:
        """Read the start-up message (call when conn is readable): None if ready, else why not."""
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            status, value = "failed", f"worker exited during start-up (code {self.proc.poll()})"
        if status == "ready":
            return None
        self.kill()
        return str(value)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class ProcessPool:
    """``workers`` persistent processes running ``fn``; see :meth:`run`.

    ``fn`` must be picklable. A worker calls ``warmup()`` on the reward (when it has one) before it
    reports ready, so imports and first-use costs never count against a sample's time limit.
    """

    def __init__(self, fn: Callable[..., Any], workers: int = 2, memory_mb: int | None = None, startup_timeout_s: float = 120.0) -> None:
        self._payload = pickle.dumps(fn)
        self._memory_mb = memory_mb
        self._n = max(1, int(workers))
        self._startup_timeout_s = startup_timeout_s
        self._workers: list[_Worker] = []
        self._starting: list[_Worker] = []
        self.last_start_error: str | None = None
        _LIVE_POOLS.add(self)

    def _spawn(self) -> None:
        """Start a worker in the background; it joins the pool when it reports ready."""
        try:
            self._starting.append(_Worker(self._payload, self._memory_mb))
        except OSError as exc:
            self.last_start_error = f"cannot start worker: {exc}"

    def _drop(self, w: _Worker) -> None:
        w.kill()
        if w in self._workers:
            self._workers.remove(w)

    def run(self, tasks: list[tuple[tuple, dict]], timeout_s: float) -> list[tuple[str, Any, float]]:
        """Run ``fn(*args, **kwargs)`` for each task; return ``(status, value, seconds)`` per task.

        status is "ok" (value = the return value), "err" (value = error text, also when the worker
        died or the task could not be sent) or "timeout" (the worker was killed after ``timeout_s``;
        a replacement starts in the background). A sample's clock starts when a ready worker
        receives it, so worker start-up never counts against it.
        """
        results: list[tuple[str, Any, float] | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        for _ in range(self._n - len(self._workers) - len(self._starting)):
            self._spawn()  # the full pool, even for a small batch: later batches find it warm
        idle = list(self._workers)
        busy: dict[Any, tuple[_Worker, int, float]] = {}  # conn -> (worker, task index, start)
        retries: dict[int, int] = {}
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                i = pending.popleft()
                args, kwargs = tasks[i]
                try:
                    w.conn.send((i, args, kwargs))
                except (OSError, EOFError) as exc:  # broken worker: replace it and retry the task
                    self._drop(w)
                    self._spawn()
                    retries[i] = retries.get(i, 0) + 1
                    if retries[i] < 3:
                        pending.appendleft(i)
                    else:
                        results[i] = ("err", f"could not reach a worker: {exc}", 0.0)
                    continue
                except Exception as exc:  # pickling error: this sample cannot be sent
                    results[i] = ("err", f"arguments not picklable: {type(exc).__name__}: {exc}", 0.0)
                    self._drop(w)  # the pipe may hold a partial message
                    self._spawn()
                    continue
                busy[w.conn] = (w, i, time.monotonic())
            if not pending and not busy:
                break
            if not idle and not busy and not self._starting:  # no worker can run anything
                for i in pending:
                    results[i] = ("err", f"no reward worker could start: {self.last_start_error}", 0.0)
                break
            starting = {w.conn: w for w in self._starting}
            deadlines = [t0 + timeout_s for _, _, t0 in busy.values()]
            deadlines += [w.started + self._startup_timeout_s for w in self._starting]
            ready = wait(list(busy) + list(starting), timeout=max(0.0, min(deadlines) - time.monotonic()))
            for conn in ready:
                if conn in starting:
                    w = starting[conn]
                    self._starting.remove(w)
                    err = w.take_ready()
                    if err is None:
                        self._workers.append(w)
                        idle.append(w)
                    else:
                        self.last_start_error = err
                    continue
                w, i, t0 = busy.pop(conn)
                try:
                    index, (status, value) = conn.recv()
                    results[index] = (status, value, time.monotonic() - t0)
                    idle.append(w)
                except (EOFError, OSError):
                    code = w.proc.poll()
                    results[i] = ("err", f"worker process died (exit code {code})", time.monotonic() - t0)
                    self._drop(w)
                    self._spawn()
            now = time.monotonic()
            for conn, (w, i, t0) in list(busy.items()):
                if now - t0 >= timeout_s:
                    busy.pop(conn)
                    results[i] = ("timeout", None, now - t0)
                    self._drop(w)
                    self._spawn()
            for w in list(self._starting):
                if now - w.started >= self._startup_timeout_s:
                    self._starting.remove(w)
                    w.kill()
                    self.last_start_error = f"worker not ready after {self._startup_timeout_s}s"
        return [r if r is not None else ("err", "not run", 0.0) for r in results]

    def close(self) -> None:
        """Stop all workers."""
        for w in self._workers:
            w.close()
        for w in self._starting:
            w.kill()
        self._workers = []
        self._starting = []

    def __del__(self) -> None:
        try:
            for w in self._workers + self._starting:
                w.kill()
        except Exception:
            pass


@atexit.register
def _close_all() -> None:
    for pool in list(_LIVE_POOLS):
        try:
            pool.close()
        except Exception:
            pass
