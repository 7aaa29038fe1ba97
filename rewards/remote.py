"""``remote``: a reward computed by an HTTP endpoint (see ``rewards.serve`` for the server).

Protocol: ``POST <url>`` with JSON ``{"prompts": [...], "completions": [...], "columns":
{name: [...]}}``; the reply is ``{"rewards": [float | null, ...]}``. stdlib only.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

__all__ = ["RemoteReward"]

log = logging.getLogger("rewards")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class RemoteReward:
    """Sends the whole batch in one request; any failure scores the batch as None.

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:8000/score``.
        request_timeout_s: socket timeout of the request.
        headers: extra HTTP headers.
        token: a bearer token (``rewards.serve --token``), sent as ``Authorization: Bearer <token>``.
    Only per-sample columns (lists as long as the batch) are sent; other keyword arguments
    (TRL's ``trainer_state``...) are not.
    """

    __name__ = "remote"
    per_sample_retry = False  # a failed batch is not retried sample by sample (n timeouts)

    def __init__(self, url: str, request_timeout_s: float = 60.0, headers: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.url = url
        self.request_timeout_s = float(request_timeout_s)
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        cols = {k: [_jsonable(x) for x in v] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
        body = json.dumps({
            "prompts": [_jsonable(p) for p in (prompts or [None] * n)],
            "completions": [_jsonable(c) for c in completions],
            "columns": cols,
        }).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={"Content-Type": "application/json", **self.headers})
        with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
            reply = json.loads(resp.read().decode())
        rewards = reply["rewards"] if isinstance(reply, dict) else reply
        if not isinstance(rewards, list) or len(rewards) != n:
            raise ValueError(f"endpoint returned {type(rewards).__name__} of length {len(rewards) if isinstance(rewards, list) else '?'} for {n} samples")
        return rewards
