"""RankGroup: call a method on every actor of a role and gather the results, in rank order.

This is the one place in rltrain that waits on a list of actor calls; the driver never writes
`ray.get([a.m.remote() for a in actors])` itself (a test checks that).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import ray


def stop_reason(error: BaseException) -> str:
    """One line for a run that stops on an error raised in the driver or in an actor (a RayTaskError's text
    carries the remote traceback; its cause's first line is the message)."""
    cause = getattr(error, "cause", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


class RankGroup:
    """The actors of one role (learner ranks, rollout workers), called together."""

    def __init__(self, actors: Sequence[Any]) -> None:
        self.actors = list(actors)

    def __len__(self) -> int:
        return len(self.actors)

    def __getitem__(self, i: int) -> Any:
        return self.actors[i]

    def __iter__(self):
        return iter(self.actors)

    def submit(self, method: str, *args: Any, **kwargs: Any) -> list:
        """Start `method(*args, **kwargs)` on every actor; returns the futures."""
        return [getattr(a, method).remote(*args, **kwargs) for a in self.actors]

    def call(self, method: str, *args: Any, **kwargs: Any) -> list:
        """`method(*args, **kwargs)` on every actor; waits and returns the results in rank order."""
        return ray.get(self.submit(method, *args, **kwargs))

    def submit_to(self, i: int, method: str, *args: Any) -> Any:
        """Start `method(*args)` on actor i alone; returns its future."""
        return getattr(self.actors[i], method).remote(*args)

    def submit_each(self, method: str, per_actor_args: Sequence[tuple]) -> list:
        """Start `method(*per_actor_args[i])` on actor i (actors without args are not called)."""
        return [getattr(a, method).remote(*args) for a, args in zip(self.actors, per_actor_args)]

    def call_each(self, method: str, per_actor_args: Sequence[tuple]) -> list:
        """`method(*per_actor_args[i])` on actor i; waits and returns the results in order."""
        return ray.get(self.submit_each(method, per_actor_args))

    def call_within(self, method: str, timeout_s: float, *args: Any) -> list:
        """`call`, bounded: the first actor error is raised as soon as it comes (not after the others
        answer: a rank waiting on a dead peer never would), and actors silent past `timeout_s` raise a
        TimeoutError naming their indices."""
        futures = self.submit(method, *args)
        pending, deadline = list(futures), time.monotonic() + timeout_s
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                silent = [i for i, f in enumerate(futures) if f in pending]
                raise TimeoutError(f"{method}: actors {silent} did not answer within {timeout_s:g} s")
            ray.get(ready)  # raises the actor's error now
        return ray.get(futures)

    @staticmethod
    def gather(futures: Sequence[Any]) -> list:
        """Wait for futures started by `submit` / `submit_each`."""
        return ray.get(list(futures))

    def kill(self) -> None:
        for a in self.actors:
            ray.kill(a)
