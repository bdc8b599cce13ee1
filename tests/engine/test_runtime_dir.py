"""Where the workers' ipc socket goes: the runtime directory, unless its path would be too long
for a Unix socket (108 bytes), then a private directory in /tmp."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import zmq

from modelserve.engine.runtime_dir import MAX_SOCKET_PATH, SOCKET_NAME, worker_socket_dir


def test_a_short_runtime_dir_holds_the_socket(tmp_path: Path) -> None:
    assert worker_socket_dir(tmp_path) == tmp_path


def test_a_deep_runtime_dir_gets_a_private_short_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    directory = worker_socket_dir(deep)
    try:
        assert directory != deep
        assert len(str(directory / SOCKET_NAME).encode()) <= MAX_SOCKET_PATH
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        # ZeroMQ can bind it (it refuses a path over its own limit).
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        socket.bind(f"ipc://{directory / SOCKET_NAME}")
        socket.close(0)
        context.term()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
