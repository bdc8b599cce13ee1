"""modelserve itself as a benchmark target: this repository's server, in this venv."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
from loadtest import server as serving
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

from compare.models import ModelFiles
from compare.open_inference import v2_answer_class, v2_request
from compare.servers import REGISTER_TIMEOUT_S, Deployment, Endpoint, register_and_answer

WORKER_MODULE = "modelserve.worker"
MIB = 1024 * 1024


class ModelserveTarget:
    """``python -m modelserve.cli start --foreground`` on free loopback ports.

    Archives are packed with our ``model-archiver`` from the same handler files TorchServe
    gets, and deployed through the management API like an operator would.
    """

    name = "modelserve"

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._server: serving.Server | None = None
        self._store: Path | None = None

    def install(self, cache: Path) -> None:
        """Nothing to install: modelserve runs from the venv that runs the benchmark."""

    def start(self, workdir: Path) -> float:
        """Start the server with an empty model store; seconds until /ping answers."""
        self._store = workdir / "model_store"
        self._store.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._server = self._stack.enter_context(
            serving.running_server(workdir / "server", self._store)
        )
        serving.wait_healthy(self._server)
        return time.monotonic() - started

    @property
    def ping_url(self) -> str:
        """``GET`` here for the health check: no worker involved, only the HTTP layer."""
        return self._running().inference + "/ping"

    def _running(self) -> serving.Server:
        if self._server is None:
            raise RuntimeError("modelserve is not started")
        return self._server

    def _archive(self, files: ModelFiles) -> str:
        """Pack ``files`` as ``<name>.mar`` in the model store (once); its file name."""
        assert self._store is not None
        archive = self._store / f"{files.name}.mar"
        if not archive.exists():
            options = ArchiveOptions(
                model_name=files.name,
                version="1.0",
                handler=str(files.handler),
                serialized_file=str(files.serialized) if files.serialized else None,
                export_path=self._store,
                force=True,
            )
            build_archive(options)
        return archive.name

    def deploy(self, deployment: Deployment, files: ModelFiles) -> Endpoint:
        """Register the archive with the deployment's workers and batching, synchronously.

        ``register_s`` runs from the register call to the first right answer, so it covers
        worker start, handler import and model load.
        """
        server = self._running()
        return register_and_answer(
            server.management,
            server.inference,
            self._archive(files),
            files,
            deployment,
            server.fail,
        )

    def undeploy(self, model: str) -> None:
        """Unregister ``model``; its workers stop before the call returns."""
        server = self._running()
        response = httpx.delete(
            f"{server.management}/models/{model}",
            params={"synchronous": "true"},
            timeout=REGISTER_TIMEOUT_S,
        )
        if response.status_code != 200:
            raise server.fail(f"unregistering {model}: HTTP {response.status_code} {response.text}")

    def root_pid(self) -> int:
        """The frontend's process, parent of every worker."""
        return self._running().process.pid

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of the frontend and, summed, of its ``modelserve.worker`` children."""
        frontend = psutil.Process(self._running().process.pid)
        workers = 0
        for child in frontend.children(recursive=True):
            try:
                if WORKER_MODULE in child.cmdline():
                    workers += child.memory_info().rss
            except psutil.NoSuchProcess:  # a worker that just exited holds no memory
                continue
        return {"frontend": frontend.memory_info().rss / MIB, "workers": workers / MIB}

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after a grace period); safe to call twice."""
        self._server = None
        self._stack.close()


class ModelserveV2Target(ModelserveTarget):
    """modelserve again, loaded through ``/v2/models/{m}/infer`` (Open Inference Protocol JSON)
    instead of ``/predictions``: the same archive and handler, which answers v2 requests in
    kind, so the two rows differ only by the protocol's route and codec."""

    name = "modelserve-v2"

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """The sample as a v2 inference request, as MLServer and Triton get it."""
        return v2_request(files)

    def deploy(self, deployment: Deployment, files: ModelFiles) -> Endpoint:
        """Register as :class:`ModelserveTarget` does, then check the v2 route's answer."""
        endpoint = super().deploy(deployment, files)
        server = self._running()
        url = f"{server.inference}/v2/models/{files.name}/infer"
        body, content_type = v2_request(files)
        answer = httpx.post(
            url, content=body, headers={"Content-Type": content_type}, timeout=REGISTER_TIMEOUT_S
        )
        if answer.status_code != 200 or v2_answer_class(answer.content) != files.expected_class:
            raise server.fail(f"{url}: HTTP {answer.status_code} {answer.content[:200]!r}")
        return Endpoint(url, endpoint.register_s)
