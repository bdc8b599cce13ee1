"""Shared fixtures: a model store of fixture archives and servers started on it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import RunningServer, build_test_archive, start_server


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dirs() -> Iterator[None]:
    """Keep the servers the tests start apart from the user's own (a modelserve may be running
    on this host): their default runtime directory, which holds the records that ps, status
    and stop act on, lies under a private TMPDIR. A short one: worker sockets live below it,
    and a socket path may not exceed 107 bytes."""
    directory = tempfile.mkdtemp(prefix="ms-")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TMPDIR", directory)
            patch.setattr(tempfile, "tempdir", None)  # gettempdir() caches what it found
            yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Archives built once with our archiver: probe v1/v2, a second model, a broken one."""
    store = tmp_path_factory.mktemp("model_store")
    build_test_archive(store, "probe", "probe.py", "1.0")
    v2_dir = tmp_path_factory.mktemp("probe_v2")
    build_test_archive(v2_dir, "probe", "probe.py", "2.0")
    (v2_dir / "probe.mar").rename(store / "probe_v2.mar")
    build_test_archive(store, "other", "probe.py", "1.0")
    build_test_archive(store, "broken", "broken_load.py", "1.0")
    build_test_archive(store, "files", "files_echo.py", "1.0")
    return store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    """A server shared by one test module, with nothing registered at start."""
    running = start_server(tmp_path_factory.mktemp("server"), model_store)
    yield running
    running.stop()
