"""Every request ends: stuck handlers, full queues, requests that wait too long, huge answers."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    RunningServer,
    build_test_archive,
    process_alive,
    ready_workers,
    start_server,
    wait_until,
)

from modelserve.engine.worker_pool import UNBATCHED_PIPELINE_DEPTH

JOB_QUEUE_SIZE = 2
MAX_REQUEST_SIZE = 8192
MAX_RESPONSE_SIZE = 4096


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Path:
    """The probe archive plus ``sized``, which answers with as many bytes as asked for."""
    directory = tmp_path_factory.mktemp("reliability_store")
    shutil.copy(model_store / "probe.mar", directory / "probe.mar")
    build_test_archive(directory, "sized", "sized.py")
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store: Path) -> Iterator[RunningServer]:
    """A server with a tiny job queue and small request and response limits."""
    running = start_server(
        tmp_path_factory.mktemp("reliability"),
        store,
        config={
            "job_queue_size": str(JOB_QUEUE_SIZE),
            "max_request_size": str(MAX_REQUEST_SIZE),
            "max_response_size": str(MAX_RESPONSE_SIZE),
        },
    )
    yield running
    running.stop()


def _register(server: RunningServer, name: str, url: str = "probe.mar", **params: int) -> None:
    response = httpx.post(
        server.management + "/models",
        params={"url": url, "model_name": name, "initial_workers": 1, **params},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert ready_workers(server, name) == 1


def _unregister(server: RunningServer, name: str) -> None:
    httpx.delete(f"{server.management}/models/{name}", timeout=60)


def _workers(server: RunningServer, model: str) -> list[dict]:
    return httpx.get(f"{server.management}/models/{model}", timeout=30).json()[0]["workers"]


REQUESTS_METRIC = "ts_inference_requests_total"


def _pending(server: RunningServer, model: str) -> int:
    described = httpx.get(f"{server.management}/models/{model}", timeout=30).json()[0]
    return described["jobQueueStatus"]["pendingRequests"]


def _received(server: RunningServer, model: str) -> float:
    """Requests the server has received for ``model`` (counted on arrival)."""
    text = httpx.get(server.metrics + "/metrics", params={"name[]": REQUESTS_METRIC}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("model_name") == model
    )


class TimedPost:
    """A POST in a background thread that records its response and how long it took."""

    def __init__(self, url: str, body: dict) -> None:
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self.elapsed_s = 0.0
        self._thread = threading.Thread(target=self._run, args=(url, body))
        self._thread.start()

    def _run(self, url: str, body: dict) -> None:
        started = time.monotonic()
        try:
            self.response = httpx.post(url, json=body, timeout=60)
        except httpx.HTTPError as exc:
            self.error = exc
        self.elapsed_s = time.monotonic() - started

    def result(self, timeout: float = 30) -> httpx.Response:
        """Wait for the response; fail when there is none in time."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"no response within {timeout} s"
        assert self.error is None, f"request failed: {self.error!r}"
        assert self.response is not None
        return self.response


def _assert_error(response: httpx.Response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["code"] == status
    assert body["type"] == error_type
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_stuck_handler_gets_504_and_its_worker_is_replaced(
    server: RunningServer, tmp_path: Path
) -> None:
    name = "stuck"
    _register(server, name, response_timeout=2)
    try:
        [worker] = _workers(server, name)
        marker = tmp_path / "in-flight"
        stuck = TimedPost(
            f"{server.inference}/predictions/{name}", {"touch": str(marker), "sleep": 60}
        )
        wait_until(marker.exists, timeout=10)
        body = _assert_error(stuck.result(timeout=10), 504, "WorkerTimeoutException")
        assert body["message"].startswith("Worker timed out: ")
        assert 2 <= stuck.elapsed_s < 4, f"answered after {stuck.elapsed_s:.1f} s"
        wait_until(lambda: not process_alive(worker["pid"]), timeout=5)

        def replaced() -> bool:
            workers = _workers(server, name)
            return (
                len(workers) == 1
                and workers[0]["status"] == "READY"
                and workers[0]["pid"] != worker["pid"]
            )

        wait_until(replaced, timeout=15)
        after = httpx.post(f"{server.inference}/predictions/{name}", json={"echo": 1}, timeout=10)
        assert after.status_code == 200, after.text
        assert after.json()["echo"] == 1
        assert after.json()["pid"] != worker["pid"]
    finally:
        _unregister(server, name)


def test_full_queue_is_503_at_once_and_oversized_body_still_413(
    server: RunningServer, tmp_path: Path
) -> None:
    name = "queued"
    _register(server, name, batch_size=1, response_timeout=20)
    url = f"{server.inference}/predictions/{name}"
    try:
        marker = tmp_path / "in-flight"
        busy = TimedPost(url, {"touch": str(marker), "sleep": 2, "echo": "busy"})
        wait_until(marker.exists, timeout=10)
        # The busy worker holds one more request behind the sleeping one (unbatched pipeline);
        # the rest fill the queue.
        waiting = JOB_QUEUE_SIZE + UNBATCHED_PIPELINE_DEPTH - 1
        queued = [TimedPost(url, {"echo": index}) for index in range(waiting)]
        wait_until(lambda: _pending(server, name) == JOB_QUEUE_SIZE, timeout=10)

        started = time.monotonic()
        refused = httpx.post(url, json={"echo": "refused"}, timeout=10)
        refused_after_s = time.monotonic() - started
        _assert_error(refused, 503, "ServiceUnavailableException")
        assert refused.headers.get("Retry-After", "").isdigit(), refused.headers
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused_after_s < 1, f"the 503 took {refused_after_s:.2f} s"

        oversized = httpx.post(url, content=b"x" * (MAX_REQUEST_SIZE + 1), timeout=10)
        _assert_error(oversized, 413, "RequestTooLargeException")
        assert str(MAX_REQUEST_SIZE) in oversized.json()["message"]

        # Nothing that was accepted is lost: the busy batch and the queue are all served.
        assert busy.result().status_code == 200
        for index, request in enumerate(queued):
            answer = request.result()
            assert answer.status_code == 200, answer.text
            assert answer.json()["echo"] == index
        assert _pending(server, name) == 0
    finally:
        _unregister(server, name)


def test_request_waiting_past_response_timeout_is_503_not_a_hang(
    server: RunningServer, tmp_path: Path
) -> None:
    name = "slow"
    response_timeout = 3
    # Each batch stays under the timeout, so only the queue wait can exceed it. The worker
    # works on the first request (2 s) and holds the second behind it (2.5 s, timed from when
    # the worker starts it); the filler gets the slot the first frees at 2 s; the last request
    # would only get one at 4.5 s.
    assert UNBATCHED_PIPELINE_DEPTH == 2, "this timeline assumes two requests per worker"
    _register(server, name, batch_size=1, response_timeout=response_timeout)
    url = f"{server.inference}/predictions/{name}"
    try:
        marker = tmp_path / "in-flight"
        first = TimedPost(url, {"touch": str(marker), "sleep": 2, "echo": "first"})
        wait_until(marker.exists, timeout=10)
        second = TimedPost(url, {"sleep": 2.5, "echo": "second"})
        # In this order: the filler must not overtake the second into the worker's free slot.
        wait_until(lambda: _received(server, name) == 2, timeout=5)
        filler = TimedPost(url, {"echo": "filler"})
        wait_until(lambda: _pending(server, name) == 1, timeout=5)
        third = TimedPost(url, {"echo": "third"})
        wait_until(lambda: _pending(server, name) == 2, timeout=5)

        body = _assert_error(third.result(), 503, "ServiceUnavailableException")
        # It says why: no worker took it within the version's response_timeout.
        message = body["message"]
        assert "worker" in message and "response_timeout" in message, message
        assert f"{response_timeout} s" in message, message
        assert third.response is not None
        assert third.response.headers.get("Retry-After", "").isdigit()
        # It ended when its wait passed response_timeout, before a worker could have taken it.
        assert response_timeout <= third.elapsed_s < response_timeout + 1.3, third.elapsed_s

        assert first.result().json()["echo"] == "first"
        assert second.result().status_code == 200
        assert second.result().json()["echo"] == "second"
        assert filler.result().json()["echo"] == "filler"
    finally:
        _unregister(server, name)


def test_response_over_max_response_size_is_500(server: RunningServer) -> None:
    name = "sized"
    _register(server, name, url="sized.mar")
    url = f"{server.inference}/predictions/{name}"
    try:
        fits = httpx.post(url, json={"size": MAX_RESPONSE_SIZE}, timeout=30)
        assert fits.status_code == 200, fits.text[:500]
        assert fits.content == b"x" * MAX_RESPONSE_SIZE

        too_large = MAX_RESPONSE_SIZE * 3
        answer = httpx.post(url, json={"size": too_large}, timeout=30)
        body = _assert_error(answer, 500, "ResponseTooLargeException")
        assert str(too_large) in body["message"], body["message"]
        assert str(MAX_RESPONSE_SIZE) in body["message"], body["message"]

        # The limit fails that response only; the worker keeps serving.
        again = httpx.post(url, json={"size": 10}, timeout=30)
        assert again.status_code == 200 and again.content == b"x" * 10
    finally:
        _unregister(server, name)
