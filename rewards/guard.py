"""``Reward``: any reward function made safe to call from a trainer.

Every sample gets a time limit (``timeout_s``) and any failure — an exception, a hang, a crash of
the verifier, a non-numeric result — becomes the ``fallback`` score (default None: no score, the
sample is dropped), logged with the reward's name and the sample's index. The caller never sees an
exception and never waits longer than about ``timeout_s`` per sample (times the batch divided by
``workers``).

Isolation modes (``isolation=``):

- ``"process"``: each sample is scored in a pool of persistent worker processes; a sample that
  overruns is ended by killing its worker (and its process group). A hard limit, even for C code
  that holds the GIL. The function must be picklable (module-level function or class instance).
- ``"thread"``: each sample runs in a daemon thread; an overrunning thread is abandoned (it cannot
  be killed) and the sample scored as fallback. Use for work that waits (subprocesses, I/O).
- ``"inline"``: the batch is called directly; exceptions are caught (and the batch retried sample
  by sample to find the culprit) but time is not limited here, so the function must bound itself
  (the code sandbox, HTTP timeouts, a reward model forward pass).

Ranges: a reward declares the interval its scores lie in (``score_range=(low, high)`` here, or a
``score_range`` attribute on the function or object; built-in rewards all have one). A score outside
it is what a gamed or broken verifier produces (issue #34: 3.33 for a program "passing" 10 of 3
tests), so it is treated like a failure: logged with the sample's index and value, counted in
``stats["out_of_range"]`` and replaced by ``fallback``. Without a declared range a reward is unbounded.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
import threading
import time
from typing import Any, Callable

__all__ = ["Reward", "ISOLATIONS", "check_range", "split_columns"]

log = logging.getLogger("rewards")

ISOLATIONS = ("process", "thread", "inline")
_PENDING = object()


def split_columns(columns: dict[str, Any], n: int) -> tuple[dict[str, list], dict[str, Any]]:
    """Split keyword arguments into per-sample columns (lists of length n) and shared context.

    TRL passes dataset columns as lists, plus non-column objects (``trainer_state``,
    ``log_metric``...); those are passed through whole to every call.
    """
    per_sample: dict[str, list] = {}
    shared: dict[str, Any] = {}
    for key, value in columns.items():
        if isinstance(value, (list, tuple)) and len(value) == n:
            per_sample[key] = list(value)
        else:
            shared[key] = value
    return per_sample, shared


def _coerce(value: Any) -> float | None:
    """A reward value as float or None; raises TypeError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        out = float(value)
        return out if math.isfinite(out) else None  # NaN and +-inf: no score (the sample is dropped)
    if hasattr(value, "item"):  # numpy / torch scalars
        return _coerce(value.item())
    raise TypeError(f"reward value must be a number or None, got {type(value).__name__}")


def check_range(value: Any, name: str) -> tuple[float, float] | None:
    """A declared score range as ``(low, high)`` floats (None: unbounded); ValueError if malformed."""
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in value)
    if not ok or value[0] > value[1]:
        raise ValueError(f"reward {name!r}: score_range must be (low, high) numbers with low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def _within(value: float, bounds: tuple[float, float]) -> bool:
    """low <= value <= high, with a relative slack for float rounding (weighted sums)."""
    lo, hi = bounds
    slack = 1e-9 * max(1.0, abs(lo) if math.isfinite(lo) else 1.0, abs(hi) if math.isfinite(hi) else 1.0)
    return lo - slack <= value <= hi + slack


def _call_one(fn: Callable[..., Any], prompt: Any, completion: Any, row: dict[str, Any], shared: dict[str, Any]) -> Any:
    """Score one sample through the batch signature; return the single value."""
    out = fn([prompt], [completion], **{k: [v] for k, v in row.items()}, **shared)
    out = list(out)
    if len(out) != 1:
        raise ValueError(f"reward returned {len(out)} values for 1 sample")
    return out[0]


class Reward:
    """A guarded reward: ``reward(prompts, completions, **columns) -> list[float | None]``.

    Args:
        fn: the raw reward, ``fn(prompts, completions, **columns) -> list[float | None]``.
        name: name used in logs and by TRL (``__name__``); defaults to fn's name.
        timeout_s: per-sample time limit in seconds (see the isolation modes above).
        fallback: score given to a sample whose scoring failed or timed out (None = dropped).
        isolation: "process", "thread" or "inline".
        workers: parallel workers for "process"/"thread" (default: min(4, CPU count)).
        worker_memory_mb: address-space limit for each "process" worker (None = no limit).
        score_range: ``(low, high)`` the reward's scores lie in (default: ``fn.score_range`` if it
            has one, else unbounded); a score outside it is dropped like a failure.

    ``stats`` counts samples, errors, timeouts and out-of-range scores since creation (for
    ``reward/*`` metrics), plus whatever the function counts in its own ``stats`` dict when it runs
    in this process (thread or inline isolation: the code reward's ``untrusted_tests``).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        timeout_s: float = 10.0,
        fallback: float | None = None,
        isolation: str = "process",
        workers: int | None = None,
        worker_memory_mb: int | None = None,
        score_range: tuple[float, float] | list[float] | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        if fallback is not None and not isinstance(fallback, (int, float)):
            raise ValueError(f"fallback must be a number or None, got {fallback!r}")
        self.fn = fn
        self.__name__ = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.timeout_s = float(timeout_s)
        self.fallback = None if fallback is None else float(fallback)
        self.isolation = isolation
        self.workers = int(workers) if workers else min(4, os.cpu_count() or 1)
        self.worker_memory_mb = worker_memory_mb
        declared = score_range if score_range is not None else getattr(fn, "score_range", None)
        self.declared_range = check_range(declared, self.__name__)
        self.counts = {"samples": 0, "errors": 0, "timeouts": 0, "out_of_range": 0}
        self._pool: Any = None
        self._lock = threading.Lock()

    @property
    def score_range(self) -> tuple[float, float] | None:
        """The range of what this guard returns: the declared range, widened to hold ``fallback``."""
        if self.declared_range is None:
            return None
        lo, hi = self.declared_range
        if self.fallback is None:
            return lo, hi
        return min(lo, self.fallback), max(hi, self.fallback)

    @property
    def stats(self) -> dict[str, int]:
        """The guard's counters, then the function's own (``fn.stats``) where the names differ."""
        out = dict(self.counts)
        inner = getattr(self.fn, "stats", None)
        if isinstance(inner, dict):
            for key, value in list(inner.items()):
                out.setdefault(key, value)
        return out

    def __repr__(self) -> str:
        return f"Reward({self.__name__!r}, isolation={self.isolation!r}, timeout_s={self.timeout_s}, fallback={self.fallback})"

    # pickling (a Reward may be sent to a Ray actor or a server): drop the live pool
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop worker processes (they also stop when the interpreter exits)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ calling
    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None, **columns: Any) -> list[float | None]:
        try:
            completions = list(completions or [])
            n = len(completions)
            prompts = list(prompts) if prompts is not None else [None] * n
            if len(prompts) != n:
                log.warning("reward %r: %d prompts for %d completions; prompts ignored", self.__name__, len(prompts), n)
                prompts = [None] * n
            per_sample, shared = split_columns(columns, n)
        except Exception as exc:  # noqa: BLE001
            log.warning("reward %r: bad arguments (%s); all samples scored %r", self.__name__, exc, self.fallback)
            try:
                return [self.fallback] * len(completions or [])
            except Exception:
                return []
        if n == 0:
            return []
        rows = [{k: v[i] for k, v in per_sample.items()} for i in range(n)]
        self.counts["samples"] += n
        if self.isolation == "inline":
            return self._inline(prompts, completions, per_sample, rows, shared)
        if self.isolation == "process":
            pool = self._get_pool()
            if pool is not None:
                try:
                    return self._process(pool, prompts, completions, rows, shared)
                except Exception as exc:  # noqa: BLE001 - e.g. processes cannot be started here
                    log.warning("reward %r: process pool failed (%s: %s); using threads", self.__name__, type(exc).__name__, exc)
                    self.close()
                    self.isolation = "thread"
        return self._threads(prompts, completions, rows, shared)

    def _fail(self, i: int, why: str) -> float | None:
        log.warning("reward %r: sample %d %s; scored %r", self.__name__, i, why, self.fallback)
        return self.fallback

    def _finish(self, i: int, status: str, value: Any, seconds: float) -> float | None:
        if status == "timeout":
            self.counts["timeouts"] += 1
            return self._fail(i, f"timed out after {seconds:.1f}s (limit {self.timeout_s}s)")
        if status == "err":
            self.counts["errors"] += 1
            return self._fail(i, f"raised {value}")
        try:
            score = _coerce(value)
        except TypeError as exc:
            self.counts["errors"] += 1
            return self._fail(i, f"returned a bad value ({exc})")
        if score is not None and self.declared_range is not None and not _within(score, self.declared_range):
            self.counts["out_of_range"] += 1
            lo, hi = self.declared_range
            return self._fail(i, f"scored {score:g}, outside its range [{lo:g}, {hi:g}]")
        return score

    def _inline(self, prompts, completions, per_sample, rows, shared) -> list[float | None]:
        n = len(completions)
        try:
            out = list(self.fn(prompts, completions, **per_sample, **shared))
            if len(out) != n:
                raise ValueError(f"returned {len(out)} values for {n} samples")
            return [self._finish(i, "ok", v, 0.0) for i, v in enumerate(out)]
        except Exception as exc:  # noqa: BLE001 - find which sample fails
            if n == 1 or not getattr(self.fn, "per_sample_retry", True):
                self.counts["errors"] += n - 1
                return [self._finish(i, "err", f"{type(exc).__name__}: {exc} (whole batch)", 0.0) for i in range(n)]
            log.info("reward %r: batch call failed (%s: %s); scoring samples one by one", self.__name__, type(exc).__name__, exc)
        results = []
        for i in range(n):
            try:
                value = _call_one(self.fn, prompts[i], completions[i], rows[i], shared)
                results.append(self._finish(i, "ok", value, 0.0))
            except Exception as exc:  # noqa: BLE001
                results.append(self._finish(i, "err", f"{type(exc).__name__}: {exc}", 0.0))
        return results

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                try:
                    pickle.dumps(self.fn)
                except Exception as exc:  # noqa: BLE001
                    log.warning("reward %r is not picklable (%s); using thread isolation", self.__name__, exc)
                    self.isolation = "thread"
                    return None
                from ._pool import ProcessPool

                self._pool = ProcessPool(
                    functools.partial(_call_one, self.fn), workers=self.workers, memory_mb=self.worker_memory_mb,
                )
            return self._pool

    def _process(self, pool, prompts, completions, rows, shared) -> list[float | None]:
        shared_ok = {}
        for key, value in shared.items():  # TRL's trainer_state, log_metric...: send only what pickles
            try:
                pickle.dumps(value)
                shared_ok[key] = value
            except Exception:  # noqa: BLE001
                log.debug("reward %r: shared argument %r not picklable; not sent to workers", self.__name__, key)
        tasks = [((prompts[i], completions[i], rows[i], shared_ok), {}) for i in range(len(completions))]
        with self._lock:  # one batch at a time per pool
            outcomes = pool.run(tasks, self.timeout_s)
        return [self._finish(i, *o) for i, o in enumerate(outcomes)]

    def _threads(self, prompts, completions, rows, shared) -> list[float | None]:
        n = len(completions)
        results: list[Any] = [_PENDING] * n
        cond = threading.Condition()

        def work(i: int) -> None:
            try:
                out: tuple[str, Any] = ("ok", _call_one(self.fn, prompts[i], completions[i], rows[i], shared))
            except BaseException as exc:  # noqa: BLE001
                out = ("err", f"{type(exc).__name__}: {exc}")
            with cond:
                if results[i] is _PENDING:
                    results[i] = out + (0.0,)
                cond.notify_all()

        next_i = 0
        running: dict[int, float] = {}
        with cond:
            while True:
                while next_i < n and len(running) < self.workers:
                    running[next_i] = time.monotonic()
                    threading.Thread(target=work, args=(next_i,), daemon=True, name=f"reward-{self.__name__}-{next_i}").start()
                    next_i += 1
                now = time.monotonic()
                for i, t0 in list(running.items()):
                    if results[i] is not _PENDING:
                        del running[i]
                    elif now - t0 >= self.timeout_s:
                        results[i] = ("timeout", None, now - t0)
                        del running[i]
                if not running and next_i >= n:
                    break
                if len(running) < self.workers and next_i < n:
                    continue
                deadline = min(running.values()) + self.timeout_s
                cond.wait(timeout=max(0.001, deadline - time.monotonic()))
        return [self._finish(i, *results[i]) for i in range(n)]
