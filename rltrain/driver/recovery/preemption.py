"""Pre-emption: SIGTERM or SIGINT asks a run to stop cleanly; a second one stops it at once.

The first signal sets a flag; the trainer loop finishes the step under way, writes a checkpoint,
prints the resume command and returns (the process exits 0). A second signal exits immediately
(status 128 + signal number) after killing the local Ray processes this driver started; a
checkpoint being written then is left as `step_<k>.tmp/`, which is
never taken for a complete one, so the last complete checkpoint stays valid. Handlers are installed
only in the main thread (a sweep trial runs in a thread of its own, stopped by Tune instead).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            print(f"[rltrain] second signal ({name}): exiting now; the last complete checkpoint stays valid", flush=True)
            _kill_descendants()
            os._exit(128 + signum)
        self.signal_name = name
        print(f"[rltrain] {name}: finishing this step, then writing a checkpoint and stopping "
              f"(send it again to exit at once)", flush=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _kill_descendants() -> None:
    """Kill every process this driver started (a local Ray cluster: GCS, raylet, agents, workers; a
    cluster it only joined runs elsewhere), which an immediate exit would otherwise leave running."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
