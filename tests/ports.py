"""Ports for servers that tests start as separate processes."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A bindable port below the kernel's ephemeral range, which outgoing connections draw
    from: a port picked there can be taken by one before the server binds it."""
    for _ in range(100):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port found")
