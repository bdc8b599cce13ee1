"""What a server serves at start and when it says so: models named on the command line are
served even after a snapshot without them; /ping is never Healthy before every startup model
has a ready worker, and names the ones that cannot load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support import build_test_archive, free_ports, start_server, wait_until


def _ping(server_url: str) -> httpx.Response:
    return httpx.get(f"{server_url}/ping", timeout=10)


def test_command_line_models_are_served_after_a_snapshot_without_them(
    tmp_path: Path, model_store: Path
) -> None:
    # The same name on every start: the snapshots of one server, in the working directory.
    args = ["--instance", "snap"]
    server = start_server(tmp_path, model_store, models=["probe=probe.mar"], args=args)
    try:
        wait_until(lambda: _ping(server.inference).json() == {"status": "Healthy"})
        assert httpx.delete(f"{server.management}/models/probe").status_code == 200
    finally:
        server.stop()
    server = start_server(tmp_path, model_store, models=["probe=probe.mar"], args=args)
    try:
        wait_until(lambda: _ping(server.inference).json() == {"status": "Healthy"})
        answer = httpx.post(f"{server.inference}/predictions/probe", json={"x": 1})
        assert answer.status_code == 200
        # The console says what was restored, and from where.
        snapshots = tmp_path / "logs" / "config" / "snap"
        assert f"restored    no models from {snapshots}" in server.log()
        assert "probe=probe.mar: registered, loading" in server.log()
    finally:
        server.stop()


def test_restored_models_and_command_line_models_are_both_served(
    tmp_path: Path, model_store: Path
) -> None:
    args = ["--instance", "both"]
    server = start_server(tmp_path, model_store, models=["other=other.mar"], args=args)
    try:
        wait_until(lambda: _ping(server.inference).json() == {"status": "Healthy"})
    finally:
        server.stop()
    # other comes back from the snapshot with its settings; probe comes from the command line.
    server = start_server(tmp_path, model_store, models=["probe=probe.mar"], args=args)
    try:
        wait_until(lambda: _ping(server.inference).json() == {"status": "Healthy"})
        listed = httpx.get(f"{server.management}/models").json()["models"]
        assert [model["modelName"] for model in listed] == ["other", "probe"]
        assert "restored    other 1.0 from" in server.log()
    finally:
        server.stop()


def test_a_startup_model_that_cannot_load_shows_in_ping_and_on_the_console(
    tmp_path: Path, model_store: Path
) -> None:
    server = start_server(tmp_path, model_store, models=["probe=probe.mar", "gone=gone.mar"])
    try:
        wait_until(lambda: "Not serving" in server.log())
        ping = _ping(server.inference)
        assert ping.status_code == 200
        body = ping.json()
        assert body["status"] == "Partial Healthy"
        assert list(body["modelsNotReady"]) == ["gone"]
        assert "gone.mar" in body["modelsNotReady"]["gone"]
        assert "gone=gone.mar: NOT loaded" in server.log()
        ready = httpx.get(f"{server.inference}/v2/health/ready")
        assert ready.status_code == 400 and "gone" in ready.json()["error"]
        # Registering a model of that name clears it.
        register = httpx.post(
            f"{server.management}/models",
            params={"url": "other.mar", "model_name": "gone", "initial_workers": 1},
        )
        assert register.status_code == 200
        assert _ping(server.inference).json() == {"status": "Healthy"}
    finally:
        server.stop()


def test_ping_is_not_healthy_until_a_slow_startup_model_has_loaded(
    tmp_path: Path, model_store: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    build_test_archive(store, "gated", "gated_load.py")
    gate = tmp_path / "gate"
    server = start_server(
        tmp_path, store, models=["gated=gated.mar"], env={"GATED_LOAD_FILE": str(gate)}
    )
    try:
        for url in (f"{server.inference}/ping", f"{server.inference}/v2/health/ready"):
            assert httpx.get(url).status_code in (400, 500)
        assert _ping(server.inference).json() == {
            "status": "Unhealthy",
            "modelsNotReady": {"gated": "loading"},
        }
        gate.touch()
        wait_until(lambda: _ping(server.inference).json() == {"status": "Healthy"})
        assert httpx.get(f"{server.inference}/v2/health/ready").status_code == 200
        wait_until(lambda: "Ready: gated." in server.log())  # the console says so too
    finally:
        server.stop()


class _HeldArchive:
    """A loopback origin that serves one archive only once the test releases it."""

    def __init__(self, archive: bytes) -> None:
        self.release = threading.Event()
        self.asked = threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                held.asked.set()
                held.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", str(len(archive)))
                self.end_headers()
                self.wfile.write(archive)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def held_archive(model_store: Path) -> Iterator[_HeldArchive]:
    origin = _HeldArchive((model_store / "probe.mar").read_bytes())
    yield origin
    origin.release.set()
    origin.server.shutdown()


def test_ping_is_not_healthy_while_startup_models_are_being_registered(
    tmp_path: Path, held_archive: _HeldArchive
) -> None:
    """The planes listen before the startup models are registered (a download may take
    minutes): /ping must not call an empty registry Healthy meanwhile."""
    store = tmp_path / "store"
    store.mkdir()
    ports = free_ports(3)
    inference = f"http://127.0.0.1:{ports[0]}"
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address={inference}\n"
        f"management_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\n"
        "enable_grpc=false\n"
        f"model_store={store}\n"
        f"allowed_urls={held_archive.url}/.*\n"
    )
    command = [sys.executable, "-m", "modelserve.cli", "start", "--foreground", "--ncs"]
    command += ["--ts-config", str(config), "--models", f"probe={held_archive.url}/probe.mar"]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert held_archive.asked.wait(60), "the server never asked for its startup archive"

        def answered() -> httpx.Response | None:
            try:
                return _ping(inference)
            except httpx.TransportError:
                return None

        ping = wait_until(answered)
        assert ping.status_code == 500
        assert ping.json()["status"] == "Unhealthy"
        assert "loading its startup models" in ping.json()["modelsNotReady"]["*"]
        held_archive.release.set()
        wait_until(lambda: _ping(inference).json() == {"status": "Healthy"})
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    assert os.path.exists(store / "probe.mar")
