"""Serve any reward over HTTP: ``python -m rewards.serve --reward math --port 8000``.

Endpoints: ``POST /score`` (the ``rewards.remote`` protocol) and ``GET /health``. Parameters of
the reward: ``--param key=value`` (values parsed as JSON when they parse, else strings), or a
whole config with ``--config '<json>'`` (what ``rewards.from_config`` accepts). Binds 127.0.0.1
unless ``--host`` says otherwise. stdlib ``http.server``, one thread per request.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["make_server", "main"]

log = logging.getLogger("rewards.serve")
MAX_BODY = 256 * 1024 * 1024


def make_server(reward: Callable[..., list], host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server scoring with ``reward`` (port 0 = any free port; see ``server.server_port``)."""

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
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length > MAX_BODY:
                    raise ValueError("request too large")
                req = json.loads(self.rfile.read(length).decode())
                completions = req["completions"]
                prompts = req.get("prompts") or [None] * len(completions)
                columns = req.get("columns") or {}
            except Exception as exc:  # noqa: BLE001
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
    args = p.parse_args(argv)
    if bool(args.reward) == bool(args.config):
        p.error("give exactly one of --reward and --config")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    reward = load(args.reward, **dict(args.param)) if args.reward else from_config(json.loads(args.config))
    server = make_server(reward, args.host, args.port)
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
