"""A small pool of killable worker processes that score one sample per task.

Unlike ``concurrent.futures``, a task that overruns its deadline is ended by killing its worker
(and the worker's whole process group); the worker is replaced and the other tasks go on. This is
the only way to bound a verifier stuck inside C code that holds the GIL (a huge big-integer power
in sympy, a catastrophic regex), which neither threads nor ``signal.alarm`` can interrupt.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import time
import weakref
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable

__all__ = ["ProcessPool"]

_LIVE_POOLS: "weakref.WeakSet[ProcessPool]" = weakref.WeakSet()


def _worker_main(conn: Any, fn: Callable[..., Any], memory_mb: int | None) -> None:
    """Worker loop: receive (index, args, kwargs), reply (index, (status, value))."""
    try:
        os.setsid()  # own process group: a timeout kills the worker and anything it started
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which cleans up
    if memory_mb:
        import resource

        limit = int(memory_mb) * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
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


class _Worker:
    def __init__(self, ctx: Any, fn: Callable[..., Any], memory_mb: int | None) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def kill(self) -> None:
        pid = self.proc.pid
        if pid:
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError, OSError):
                    pass
        try:
            self.conn.close()
        except OSError:
            pass
        self.proc.join(timeout=5)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout=1)
        if self.proc.is_alive():
            self.kill()
        else:
            try:
                self.conn.close()
            except OSError:
                pass


class ProcessPool:
    """``workers`` persistent processes running ``fn``; see :meth:`run`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        workers: int = 2,
        start_method: str | None = None,
        memory_mb: int | None = None,
        preload: list[str] | None = None,
    ) -> None:
        method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        self._ctx = mp.get_context(method)
        if method == "forkserver" and preload:
            self._ctx.set_forkserver_preload(preload)
        self._fn = fn
        self._memory_mb = memory_mb
        self._n = max(1, int(workers))
        self._workers: list[_Worker] = []
        _LIVE_POOLS.add(self)

    def _new_worker(self) -> _Worker:
        return _Worker(self._ctx, self._fn, self._memory_mb)

    def run(
        self, tasks: list[tuple[tuple, dict]], timeout_s: float
    ) -> list[tuple[str, Any, float]]:
        """Run ``fn(*args, **kwargs)`` for each task; return ``(status, value, seconds)`` per task.

        status is "ok" (value = the return value), "err" (value = error text, also when the worker
        died or the task could not be sent) or "timeout" (the worker was killed after ``timeout_s``).
        """
        results: list[tuple[str, Any, float] | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        while len(self._workers) < min(self._n, len(tasks)):
            self._workers.append(self._new_worker())
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
                    self._replace(w)
                    idle.append(self._workers[-1])
                    retries[i] = retries.get(i, 0) + 1
                    if retries[i] < 3:
                        pending.appendleft(i)
                    else:
                        results[i] = ("err", f"could not reach a worker: {exc}", 0.0)
                    continue
                except Exception as exc:  # pickling error: this sample cannot be sent
                    results[i] = ("err", f"arguments not picklable: {type(exc).__name__}: {exc}", 0.0)
                    self._replace(w)  # the pipe may hold a partial message
                    idle.append(self._workers[-1])
                    continue
                busy[w.conn] = (w, i, time.monotonic())
            if not busy:
                continue
            now = time.monotonic()
            next_deadline = min(t0 for _, _, t0 in busy.values()) + timeout_s
            ready = wait(list(busy), timeout=max(0.0, next_deadline - now))
            for conn in ready:
                w, i, t0 = busy.pop(conn)
                try:
                    index, (status, value) = conn.recv()
                    results[index] = (status, value, time.monotonic() - t0)
                    idle.append(w)
                except (EOFError, OSError):
                    code = w.proc.exitcode
                    results[i] = ("err", f"worker process died (exit code {code})", time.monotonic() - t0)
                    self._replace(w)
                    idle.append(self._workers[-1])
            now = time.monotonic()
            for conn, (w, i, t0) in list(busy.items()):
                if now - t0 >= timeout_s:
                    busy.pop(conn)
                    results[i] = ("timeout", None, now - t0)
                    self._replace(w)
                    idle.append(self._workers[-1])
        return [r if r is not None else ("err", "not run", 0.0) for r in results]

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)
        self._workers.append(self._new_worker())

    def close(self) -> None:
        """Stop all workers."""
        for w in self._workers:
            w.close()
        self._workers = []

    def __del__(self) -> None:
        try:
            for w in self._workers:
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
