"""Addresses and ports for the rendezvous an actor hosts (DeepSpeed's ranks, the weight-sync group)."""

from __future__ import annotations

import socket

__all__ = ["free_port", "node_endpoint"]


def free_port() -> int:
    """A TCP port free on this machine's loopback at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_endpoint() -> tuple[str, int]:
    """(this node's address, a port free on it), for a rendezvous hosted here."""
    import ray

    return ray.util.get_node_ip_address(), free_port()
