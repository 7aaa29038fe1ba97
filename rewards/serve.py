"""Serve any reward over HTTP: ``python -m rewards.serve --reward math --port 8000``.

Endpoints: ``POST /score`` (the ``rewards.remote`` protocol) and ``GET /health``. Parameters of
the reward: ``--param key=value`` (values parsed as JSON when they parse, else strings), or a
whole config with ``--config '<json>'`` (what ``rewards.from_config`` accepts). Binds 127.0.0.1
unless ``--host`` says otherwise; beyond loopback it requires a bearer token (``--token`` or the
``REWARD_SERVER_TOKEN`` environment variable): ``/score`` without ``Authorization: Bearer <token>``
is answered 401. Requests over ``--max-body-mb`` or with more than ``--max-batch`` completions are
answered 413, malformed JSON or fields 400. stdlib ``http.server``, one thread per request.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["make_server", "main"]

log = logging.getLogger("rewards.serve")
MAX_BODY = 16 * 1024 * 1024
MAX_BATCH = 4096


class RequestError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_request(body: bytes, max_batch: int) -> tuple[list, list, dict]:
    """(prompts, completions, columns) of a /score body; RequestError(400 / 413) naming what is wrong."""
    try:
        req = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(400, f"bad request: not JSON ({e})") from None
    if not isinstance(req, dict) or not isinstance(req.get("completions"), list):
        raise RequestError(400, "bad request: a JSON object with a `completions` list is expected")
    completions = req["completions"]
    n = len(completions)
    if n > max_batch:
        raise RequestError(413, f"batch of {n} completions is over the server's cap of {max_batch}")
    prompts = req.get("prompts") or [None] * n
    columns = req.get("columns") or {}
    if not isinstance(prompts, list) or len(prompts) != n:
        raise RequestError(400, f"bad request: `prompts` must be a list of {n} (one per completion)")
    if not isinstance(columns, dict) or any(not isinstance(v, list) or len(v) != n for v in columns.values()):
        raise RequestError(400, f"bad request: `columns` must map names to lists of {n}")
    return prompts, completions, columns


def make_server(reward: Callable[..., list], host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                max_body: int = MAX_BODY, max_batch: int = MAX_BATCH) -> ThreadingHTTPServer:
    """An HTTP server scoring with ``reward`` (port 0 = any free port; see ``server.server_port``).
    Beyond loopback a bearer ``token`` is required (ValueError before anything binds)."""
    if not _is_loopback(host) and not token:
        raise ValueError(f"binding {host} (beyond loopback) needs a bearer token: --token or REWARD_SERVER_TOKEN")
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") in ("/health", ""):
                self._send(200, {"ok": True, "reward": getattr(reward, "__name__", "reward")})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") not in ("/score", ""):
                self._send(404, {"error": "not found"})
                return
            if expected is not None and not hmac.compare_digest(
                    self.headers.get("Authorization", "").encode(), expected):
                self._send(401, {"error": "unauthorized: send Authorization: Bearer <token>"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length > max_body:
                    raise RequestError(413, f"request of {length} bytes is over the server's cap of {max_body}")
                prompts, completions, columns = parse_request(self.rfile.read(length), max_batch)
            except RequestError as exc:
                self.close_connection = True  # an unread oversized body is not drained
                self._send(exc.code, {"error": str(exc)})
                return
            except ValueError as exc:  # a Content-Length that is not a number
                self._send(400, {"error": f"bad request: {exc}"})
                return
            try:
                scores = list(reward(prompts, completions, **columns))
            except Exception as exc:  # noqa: BLE001 - guarded rewards do not raise; raw ones might
                log.exception("reward failed")
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, {"rewards": scores})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _parse_param(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param wants key=value, got {item!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    from .registry import from_config, load

    p = argparse.ArgumentParser(prog="python -m rewards.serve", description=__doc__.splitlines()[0])
    p.add_argument("--reward", help="a reward name or import path (see rewards.available())")
    p.add_argument("--config", help="a JSON reward config (alternative to --reward)")
    p.add_argument("--param", action="append", default=[], type=_parse_param, help="key=value, repeatable")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=os.environ.get("REWARD_SERVER_TOKEN"),
                   help="bearer token clients must send (required beyond loopback; default $REWARD_SERVER_TOKEN)")
    p.add_argument("--max-body-mb", type=float, default=MAX_BODY / 2**20)
    p.add_argument("--max-batch", type=int, default=MAX_BATCH)
    args = p.parse_args(argv)
    if bool(args.reward) == bool(args.config):
        p.error("give exactly one of --reward and --config")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    reward = load(args.reward, **dict(args.param)) if args.reward else from_config(json.loads(args.config))
    try:
        server = make_server(reward, args.host, args.port, args.token, int(args.max_body_mb * 2**20), args.max_batch)
    except ValueError as e:
        p.error(str(e))
    print(f"serving reward {getattr(reward, '__name__', '?')!r} on http://{args.host}:{server.server_port}/score", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        close = getattr(reward, "close", None)
        if close:
            close()


if __name__ == "__main__":
    main(sys.argv[1:])
