"""Helpers of the tests that launch several training processes: a free port, DeepSpeed's CPU shm files."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port free on loopback now (each launch its own: runs never share a rendezvous or shm files)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shm_buffers(port: int) -> list[Path]:
    """DeepSpeed's CPU all-reduce files of a launch on ``port`` (``/dev/shm``, one per rank)."""
    return sorted(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"))
