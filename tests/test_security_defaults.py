"""Doors closed by default: private worker sockets, safe YAML, loopback listeners."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import psutil
from support import build_test_archive, start_server, wait_until


def test_worker_socket_lives_in_a_private_directory(tmp_path: Path, model_store: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o777)
    os.chmod(runtime, 0o777)  # as loose as a shared temp directory
    running = start_server(tmp_path, model_store, models=["probe=probe.mar"])
    try:
        wait_until(lambda: httpx.get(running.inference + "/ping").json()["status"] == "Healthy")
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        sockets = [path for path in runtime.rglob("*") if path.is_socket()]
        assert [path.name for path in sockets] == ["workers.sock"]
        # Workers are reached over ipc:// only: the server listens on no port but its planes
        # (REST and gRPC).
        listening = {
            conn.laddr.port
            for conn in psutil.Process(running.process.pid).net_connections("tcp")
            if conn.status == "LISTEN"
        }
        urls = (running.inference, running.management, running.metrics)
        urls += (running.grpc_inference, running.grpc_management)
        assert listening == {int(url.rsplit(":", 1)[1]) for url in urls}
    finally:
        running.stop()


def test_yaml_model_config_cannot_run_code(tmp_path: Path) -> None:
    """TorchServe's CVE-2022-1471 class: a YAML tag that would construct Python objects."""
    marker = tmp_path / "pwned"
    config = tmp_path / "model-config.yaml"
    config.write_text("minWorkers: 1\n")
    store = tmp_path / "store"
    store.mkdir()
    build_test_archive(
        store, "yamlbomb", "probe.py", config_file=config, archive_format="no-archive"
    )
    # Our archiver refuses such a file, so plant it in the unpacked archive afterwards.
    planted = f'minWorkers: !!python/object/apply:os.system ["touch {marker}"]\n'
    (store / "yamlbomb" / "model-config.yaml").write_text(planted)
    running = start_server(tmp_path / "server", store)
    try:
        response = httpx.post(running.management + "/models?url=yamlbomb&initial_workers=1")
        assert response.status_code == 400
        assert "cannot read model config" in response.json()["message"]
        assert not marker.exists()
    finally:
        running.stop()


def test_planes_listen_on_loopback_by_default() -> None:
    from modelserve.config import Settings

    settings = Settings()
    for plane in ("inference", "management", "metrics"):
        assert settings.address(plane).host == "127.0.0.1"
