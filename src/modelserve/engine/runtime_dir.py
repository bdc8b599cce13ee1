"""The server's private runtime directory: worker sockets, extracted models, worker specs."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import psutil

log = logging.getLogger("modelserve.engine")
SOCKET_NAME = "workers.sock"
# A Unix socket path holds at most 107 bytes (sun_path, NUL included: 108).
MAX_SOCKET_PATH = 107
# Where the socket goes when the runtime directory is too deep for one: short on every Linux.
SHORT_SOCKET_ROOT = Path("/tmp")


def prepare_runtime_dir(runtime_dir: Path) -> None:
    """Create ``runtime_dir`` afresh (with ``models`` and ``specs``), owner-only, and delete
    what servers killed with SIGKILL left beside it."""
    runtime_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(runtime_dir.parent, 0o700)  # ipc sockets live here: owner only
    _remove_stale_runtime_dirs(runtime_dir.parent)
    shutil.rmtree(runtime_dir, ignore_errors=True)
    for sub in ("models", "specs"):
        (runtime_dir / sub).mkdir(mode=0o700, parents=True)


def _remove_stale_runtime_dirs(parent: Path) -> None:
    """Delete the runtime directories (named by pid) of server processes that are gone."""
    for entry in parent.iterdir():
        if entry.is_dir() and entry.name.isdigit() and not psutil.pid_exists(int(entry.name)):
            log.info("removing the runtime directory of dead server process %s", entry.name)
            shutil.rmtree(entry, ignore_errors=True)


def worker_socket_dir(runtime_dir: Path) -> Path:
    """The directory of the workers' ipc socket: ``runtime_dir`` itself, or, when the socket
    path would be too long there (a deep ``runtime_dir`` or TMPDIR), a new owner-only directory
    in /tmp, which the caller removes at stop."""
    if len(str(runtime_dir / SOCKET_NAME).encode()) <= MAX_SOCKET_PATH:
        return runtime_dir
    root = SHORT_SOCKET_ROOT if SHORT_SOCKET_ROOT.is_dir() else None
    directory = Path(tempfile.mkdtemp(prefix="modelserve-", dir=root))  # mode 0700
    log.info(
        "runtime_dir %s is too deep for a socket path; the worker socket is in %s",
        runtime_dir,
        directory,
    )
    return directory
