"""allowed_urls and http(s) downloads through the real server, from a real loopback origin.

Every refused registration must answer TorchServe's error body and leave the model store
exactly as it was: no archive and no part file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support import RunningServer, build_test_archive, free_ports, start_server, wait_until

from modelserve.config import Settings
from modelserve.engine.archive_download import download_archive

MAX_DOWNLOAD = 256 * 1024
DOWNLOAD_TIMEOUT_S = 2
CHUNK = b"x" * 64 * 1024
# Bounds on what the endless routes send, so a client that never stops cannot hang a test.
ENDLESS_CAP = 64 * len(CHUNK)
SLOW_CAP_S = 20
LARGE_BYTES = 20 * 1024**2  # enough for progress lines: one per 8 MiB at least


@dataclass
class Origin:
    """A loopback HTTP server: archives under /pub/ and /private/, plus misbehaving routes."""

    archives: dict[str, bytes]
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def start(self) -> Origin:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked bodies need it

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                origin.requests.append(self.path)
                # The client hanging up on an endless or slow body is what those tests expect.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    origin.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        name = path.rsplit("/", 1)[-1]
        if path in self.redirects:
            self._head(handler, 302, {"Location": self.redirects[path], "Content-Length": "0"})
        elif path.startswith(("/pub/", "/private/")) and name in self.archives:
            body = self.archives[name]
            self._head(handler, 200, {"Content-Length": str(len(body))})
            handler.wfile.write(body)
        elif path == "/pub/big-declared.mar":
            self._head(handler, 200, {"Content-Length": str(100 * MAX_DOWNLOAD)})
            handler.wfile.write(CHUNK)
        elif path == "/pub/big-chunked.mar":
            self._head(handler, 200, {"Transfer-Encoding": "chunked"})
            sent = 0
            while sent < ENDLESS_CAP and not self.stop.is_set():
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                sent += len(CHUNK)
        elif path == "/pub/slow.mar":
            self._head(handler, 200, {"Content-Length": "1000"})
            deadline = time.monotonic() + SLOW_CAP_S
            while time.monotonic() < deadline and not self.stop.wait(0.05):
                handler.wfile.write(b"x")
                handler.wfile.flush()
        elif path == "/pub/error.mar":
            self._head(handler, 500, {"Content-Length": "0"})
        else:
            self._head(handler, 404, {"Content-Length": "0"})

    @staticmethod
    def _head(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    built = tmp_path_factory.mktemp("origin")
    for name in ("remote_probe", "redirected", "restart_probe"):
        build_test_archive(built, name, "probe.py")
    archives = {path.name: path.read_bytes() for path in built.glob("*.mar")}
    archives["garbage.mar"] = b"this is not an archive" * 100
    archives["large.bin"] = bytes(LARGE_BYTES)
    running = Origin(archives).start()
    yield running
    running.close()


@pytest.fixture(scope="module")
def other_origin() -> Iterator[Origin]:
    """A second origin on another port: a redirect must not reach it."""
    running = Origin({}).start()
    yield running
    running.close()


def _patterns(origin: Origin) -> str:
    # The first pattern is deliberately loose: it would match "http://127.0.0.1@evil/pub/..."
    # as typed, so the userinfo case shows that the normalised url is what counts.
    return rf"http://127\.0\.0\.1.*/pub/.*,http://localhost:{origin.port}/pub/.*"


def _config(origin: Origin) -> dict[str, str]:
    return {
        "allowed_urls": _patterns(origin),
        "max_download_size": str(MAX_DOWNLOAD),
        "download_timeout": str(DOWNLOAD_TIMEOUT_S),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty model store, with a real archive just outside it for ".." to reach."""
    root = tmp_path_factory.mktemp("stores")
    build_test_archive(root, "outside", "probe.py")
    store = root / "store"
    store.mkdir()
    return store


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, store: Path, origin: Origin, other_origin: Origin
) -> Iterator[RunningServer]:
    origin.redirects.update(
        {
            "/pub/latest.mar": "/pub/redirected.mar",
            "/pub/to-other-port.mar": f"{other_origin.url}/pub/remote_probe.mar",
            "/pub/to-other-host.mar": f"http://localhost:{origin.port}/pub/remote_probe.mar",
            "/pub/to-private.mar": "/private/remote_probe.mar",
            "/pub/loop.mar": "/pub/loop.mar",
        }
    )
    running = start_server(tmp_path_factory.mktemp("server"), store, config=_config(origin))
    yield running
    running.stop()


@pytest.fixture()
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.management, timeout=60) as client:
        yield client


def _listing(store: Path) -> set[str]:
    return {path.name for path in store.iterdir()}


def _part_files(store: Path) -> list[str]:
    return [name for name in _listing(store) if ".part-" in name]


@dataclass(frozen=True)
class Refusal:
    url: Callable[[Origin, Path], str]
    status: int
    type: str
    reason: str
    contacts_origin: bool = False


REFUSALS = {
    "etc-passwd": Refusal(
        lambda o, s: "file:///etc/passwd", 404, "ModelNotFoundException", "does not match any"
    ),
    "dotdot-raw": Refusal(
        lambda o, s: "../outside.mar", 404, "ModelNotFoundException", "Relative path"
    ),
    "dotdot-encoded": Refusal(
        lambda o, s: "%2e%2e%2foutside.mar", 404, "ModelNotFoundException", "Relative path"
    ),
    "dotdot-file-url": Refusal(
        lambda o, s: f"file://{s}/%2E%2E/outside.mar",
        404,
        "ModelNotFoundException",
        "Relative path",
    ),
    "dotdot-http": Refusal(
        lambda o, s: f"{o.url}/pub/%2e%2e/private/remote_probe.mar",
        404,
        "ModelNotFoundException",
        "Relative path",
    ),
    "not-matching": Refusal(
        lambda o, s: f"{o.url}/private/remote_probe.mar",
        404,
        "ModelNotFoundException",
        "does not match any allowed URL(s)",
    ),
    "userinfo": Refusal(
        lambda o, s: f"http://127.0.0.1@localhost:{o.port}/pub/remote_probe.mar",
        404,
        "ModelNotFoundException",
        "User info",
    ),
    "no-file-name": Refusal(
        lambda o, s: f"{o.url}/pub/", 400, "BadRequestException", "does not name an archive file"
    ),
    "hidden-file-name": Refusal(
        lambda o, s: f"{o.url}/pub/.probe.mar",
        400,
        "BadRequestException",
        "does not name an archive file",
    ),
    "redirect-other-port": Refusal(
        lambda o, s: f"{o.url}/pub/to-other-port.mar",
        400,
        "DownloadArchiveException",
        "refused: it leaves",
        contacts_origin=True,
    ),
    "redirect-other-host": Refusal(
        lambda o, s: f"{o.url}/pub/to-other-host.mar",
        400,
        "DownloadArchiveException",
        "refused: it leaves",
        contacts_origin=True,
    ),
    "redirect-not-matching": Refusal(
        lambda o, s: f"{o.url}/pub/to-private.mar",
        400,
        "DownloadArchiveException",
        "refused: it does not match any allowed URL(s)",
        contacts_origin=True,
    ),
    "redirect-loop": Refusal(
        lambda o, s: f"{o.url}/pub/loop.mar",
        400,
        "DownloadArchiveException",
        "more than 5 redirects",
        contacts_origin=True,
    ),
    "oversized-declared": Refusal(
        lambda o, s: f"{o.url}/pub/big-declared.mar",
        400,
        "DownloadArchiveException",
        f"exceeds max_download_size ({MAX_DOWNLOAD} bytes)",
        contacts_origin=True,
    ),
    "oversized-chunked": Refusal(
        lambda o, s: f"{o.url}/pub/big-chunked.mar",
        400,
        "DownloadArchiveException",
        f"exceeds max_download_size ({MAX_DOWNLOAD} bytes)",
        contacts_origin=True,
    ),
    "origin-error": Refusal(
        lambda o, s: f"{o.url}/pub/error.mar",
        400,
        "DownloadArchiveException",
        "HTTP 500 Internal Server Error",
        contacts_origin=True,
    ),
    "slow-origin": Refusal(
        lambda o, s: f"{o.url}/pub/slow.mar",
        400,
        "DownloadArchiveException",
        f"timed out after {DOWNLOAD_TIMEOUT_S} s (download_timeout)",
        contacts_origin=True,
    ),
    "nothing-listening": Refusal(
        lambda o, s: f"http://127.0.0.1:{free_ports(1)[0]}/pub/remote_probe.mar",
        400,
        "DownloadArchiveException",
        "Failed to download archive from",
    ),
    "not-an-archive": Refusal(
        lambda o, s: f"{o.url}/pub/garbage.mar",
        400,
        "InvalidModelException",
        "not a zip (.mar) or gzip-compressed tar archive",
        contacts_origin=True,
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refused_registration_writes_nothing(
    case: str,
    api: httpx.Client,
    store: Path,
    origin: Origin,
    other_origin: Origin,
) -> None:
    refusal = REFUSALS[case]
    url = refusal.url(origin, store)
    before = _listing(store)
    asked = len(origin.requests)
    response = api.post("/models", params={"url": url, "initial_workers": 1})
    assert response.status_code == refusal.status, response.text
    body = response.json()
    assert set(body) == {"code", "type", "message"}
    assert body["code"] == refusal.status
    assert body["type"] == refusal.type
    assert refusal.reason in body["message"]
    if refusal.type != "InvalidModelException":
        assert url in body["message"]
    assert _listing(store) == before
    assert _part_files(store) == []
    assert (len(origin.requests) > asked) is refusal.contacts_origin
    assert other_origin.requests == []


def test_allowed_url_downloads_registers_and_predicts(
    api: httpx.Client, server: RunningServer, store: Path, origin: Origin
) -> None:
    url = f"{origin.url}/pub/remote_probe.mar"
    response = api.post("/models", params={"url": url, "initial_workers": 1})
    assert response.status_code == 200, response.text
    assert "registered with 1 initial workers" in response.json()["status"]
    prediction = httpx.post(f"{server.inference}/predictions/remote_probe", json={}, timeout=30)
    assert prediction.status_code == 200, prediction.text
    assert (store / "remote_probe.mar").read_bytes() == origin.archives["remote_probe.mar"]
    assert _part_files(store) == []
    # The recorded url is the stored file: a restart loads it from the store.
    assert api.get("/models/remote_probe").json()[0]["modelUrl"] == "remote_probe.mar"
    size = len(origin.archives["remote_probe.mar"])
    assert f"downloaded {url}: {size} bytes in " in server.log()

    asked = len(origin.requests)
    again = api.post("/models", params={"url": url})
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "ConflictStatusException"
    assert "already exists in the model store: remote_probe.mar" in again.json()["message"]
    assert len(origin.requests) == asked, "a conflict must be found before downloading"


def test_same_origin_redirect_is_followed(api: httpx.Client, store: Path, origin: Origin) -> None:
    response = api.post("/models", params={"url": f"{origin.url}/pub/latest.mar"})
    assert response.status_code == 200, response.text
    assert "/pub/redirected.mar" in origin.requests
    # Stored under the name asked for, like TorchServe, so that name is what is recorded.
    assert (store / "latest.mar").read_bytes() == origin.archives["redirected.mar"]
    assert api.get("/models/redirected").json()[0]["modelUrl"] == "latest.mar"


def test_restart_restores_a_download_from_the_store(tmp_path: Path, origin: Origin) -> None:
    store = tmp_path / "store"
    store.mkdir()
    config = {**_config(origin), "snapshot_dir": str(tmp_path / "snapshots")}
    first = start_server(tmp_path / "first", store, config=config)
    try:
        url = f"{origin.url}/pub/restart_probe.mar"
        response = httpx.post(first.management + "/models", params={"url": url}, timeout=60)
        assert response.status_code == 200, response.text
    finally:
        first.stop()
    asked = len(origin.requests)
    second = start_server(tmp_path / "second", store, config=config)
    try:
        described = httpx.get(second.management + "/models/restart_probe", timeout=30)
        assert described.status_code == 200, described.text
        assert described.json()[0]["modelUrl"] == "restart_probe.mar"
        assert len(origin.requests) == asked, "the restart downloaded the archive again"
    finally:
        second.stop()


def test_cancelled_download_leaves_no_part_file(tmp_path: Path, origin: Origin) -> None:
    settings = Settings(
        model_store=tmp_path,
        allowed_urls=[r"http://127\.0\.0\.1:\d+/pub/.*"],
        download_timeout=SLOW_CAP_S,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asked = origin.requests.count("/pub/slow.mar")
        download = asyncio.run_coroutine_threadsafe(
            download_archive(f"{origin.url}/pub/slow.mar", settings), loop
        )
        wait_until(lambda: origin.requests.count("/pub/slow.mar") > asked, timeout=10)
        assert _part_files(tmp_path), "the body should be arriving into a part file"
        download.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            download.result(timeout=10)
        wait_until(lambda: os.listdir(tmp_path) == [], timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_download_without_allowed_urls_is_refused(tmp_path: Path, origin: Origin) -> None:
    store = tmp_path / "store"
    store.mkdir()
    server = start_server(tmp_path / "server", store)
    try:
        url = f"{origin.url}/pub/remote_probe.mar"
        response = httpx.post(server.management + "/models", params={"url": url}, timeout=30)
        assert response.status_code == 404
        assert response.json()["message"] == f"Given URL {url} does not match any allowed URL(s)"
        assert os.listdir(store) == []
    finally:
        server.stop()


def test_long_download_logs_progress(
    tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelserve.download")
    settings = Settings(model_store=tmp_path, allowed_urls=[r"http://127\.0\.0\.1:\d+/pub/.*"])
    url = f"{origin.url}/pub/large.bin"
    stored = asyncio.run(download_archive(url, settings))
    assert stored == tmp_path / "large.bin"
    assert stored.stat().st_size == LARGE_BYTES
    assert os.listdir(tmp_path) == ["large.bin"]
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == f"downloading {url} to {stored}"
    # One line per 8 MiB (10 % of 20 MiB is less); chunk sizes decide the exact byte counts.
    progress = [message.split(" (")[0] for message in messages[1:-1]]
    assert progress == [f"downloading {url}: 40%", f"downloading {url}: 80%"]
    assert messages[-1].startswith(f"downloaded {url}: {LARGE_BYTES} bytes in ")


def test_other_management_calls_go_on_during_a_download(tmp_path: Path, origin: Origin) -> None:
    """A slow download holds no lock: a registration from the store completes meanwhile."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "local_probe.mar").write_bytes(origin.archives["restart_probe.mar"])
    # Long enough for the registration beside it, short enough to end the test soon.
    config = {**_config(origin), "download_timeout": "5"}
    running = start_server(tmp_path / "server", store, config=config)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            asked = origin.requests.count("/pub/slow.mar")
            slow = pool.submit(
                httpx.post,
                running.management + "/models",
                params={"url": f"{origin.url}/pub/slow.mar"},
                timeout=SLOW_CAP_S + 30,
            )
            wait_until(lambda: origin.requests.count("/pub/slow.mar") > asked, timeout=10)
            local = httpx.post(
                running.management + "/models",
                params={"url": "local_probe.mar", "initial_workers": 0},
                timeout=30,
            )
            assert local.status_code == 200, local.text
            assert not slow.done(), "the registration should not have waited for the download"
            assert slow.result().status_code == 400  # download_timeout
    finally:
        running.stop()
