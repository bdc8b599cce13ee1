"""Targets for servers that load their model when the process starts (MLServer, LitServe,
Triton through PyTriton, Ray Serve, BentoML).

None of them has a register call to compare with modelserve's and TorchServe's management
API: the model, its batching and its workers are part of the server's start-up configuration.
So :meth:`SpawnedTarget.start` starts nothing, :meth:`SpawnedTarget.deploy` starts a process
configured for the deployment, and :meth:`SpawnedTarget.undeploy` stops it. The deployment's
``register_s`` runs from process start to the first right answer: interpreter start, imports,
worker spawn and model load, the same ground a register call plus first request covers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import httpx
import psutil

from compare.models import ModelFiles
from compare.servers import Deployment, Endpoint, NotSupported
from compare.venvs import ensure_venv, venv_env

RUNTIMES_DIR = Path(__file__).resolve().parent / "runtimes"
# Only the tiny models: their JSON requests stay small. ResNet's 150,528 floats as JSON text
# would measure the JSON codec, not the server.
SUPPORTED_MODELS = ("digits", "mlp")
FIRST_ANSWER_DEADLINE_S = 180
# A request sent before the server listens may sit in the socket's backlog until it does.
ATTEMPT_TIMEOUT_S = 30
POLL_S = 0.05
STOP_DEADLINE_S = 15
LOG_TAIL_CHARS = 4000
MIB = 1024 * 1024
# The runtimes touch a file named after their pid here when they load the model, which is
# how worker processes are told from the frontend's (the runtimes read the same name).
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"
# Statuses of a server that is up while its model is still loading.
LOADING_STATUSES = {404, 503}


class ServerError(RuntimeError):
    """The server did not start or did not answer right."""


class ServerProcess:
    """One server process in a session of its own, its log, and its workers' pid files."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], pid_dir: Path) -> None:
        self.log_path = cwd / "server.log"
        self.pid_dir = pid_dir
        with self.log_path.open("wb") as log_file:
            # A new session makes the server and every process it spawns one process group,
            # which stop() can kill as a whole if the server leaves children behind.
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process.poll() is None

    def fail(self, message: str) -> ServerError:
        """An error carrying ``message`` and the end of the server's log."""
        tail = self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        return ServerError(f"{message}\n--- server log (tail) ---\n{tail}")

    def memory_mb(self) -> dict[str, float]:
        """RSS of the model-loading worker processes, and of every other process of the tree.

        Here the frontend is all of the server's processes but the workers: LitServe answers
        HTTP in a child of the process it was started as, and both keep multiprocessing
        helpers beside it.
        """
        root = psutil.Process(self.process.pid)
        workers = {int(path.name) for path in self.pid_dir.iterdir()} - {root.pid}
        totals = {"frontend": 0, "workers": 0}
        for process in [root, *root.children(recursive=True)]:
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:  # a helper that just exited holds no memory
                continue
            totals["workers" if process.pid in workers else "frontend"] += rss
        return {part: rss / MIB for part, rss in totals.items()}

    def stop(self) -> None:
        """SIGTERM, so the server stops its workers itself; then SIGKILL whatever is left."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.alive():
            self.process.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_DEADLINE_S)
        # The group outlives its leader while any member does, so this reaches children the
        # server failed to stop, and a server that ignored SIGTERM.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for child in children:  # in case one moved to a group of its own
            with suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=STOP_DEADLINE_S)
        self.process.wait()


class SpawnedTarget:
    """The part of :class:`compare.servers.ServerTarget` common to servers configured at start.

    Subclasses name the server and its venv requirements, build the command line
    (:meth:`command`), the request (:meth:`request_body`) and read the answer
    (:meth:`answer_class`). One deployment runs at a time.
    """

    name: str
    requirements: list[str]
    # The venv's name under the cache, when targets share one (default: ``name``).
    venv_name: str | None = None

    def __init__(self) -> None:
        self._python: Path | None = None
        self._workdir: Path | None = None
        self._server: ServerProcess | None = None
        self._model: str | None = None

    def install(self, cache: Path) -> None:
        """Create (once) the server's own venv with torch under ``cache``."""
        self._python = ensure_venv(cache, self.venv_name or self.name, self.requirements)

    def start(self, workdir: Path) -> float:
        """Only remember ``workdir``; returns 0.0, as no process runs before :meth:`deploy`.

        These servers cannot start without their model, so a cold start apart from model
        load does not exist; process start to first answer is reported as ``register_s``.
        """
        self._workdir = workdir
        return 0.0

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """Write any configuration into ``rundir``; return the server's command and the URL
        to POST requests to."""
        raise NotImplementedError

    def environment(self, deployment: Deployment, files: ModelFiles) -> dict[str, str]:
        """Variables the server process gets beside its venv's (none unless overridden)."""
        return {}

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """The body and content type this server expects for one request of ``files``."""
        raise NotImplementedError

    def answer_class(self, body: bytes) -> int | None:
        """The class index a response body carries, or None if it carries none."""
        raise NotImplementedError

    def still_loading(self, response: httpx.Response) -> bool:
        """Whether ``response`` says the model is not loaded yet, rather than that the
        request was wrong."""
        return response.status_code in LOADING_STATUSES

    def deploy(self, deployment: Deployment, files: ModelFiles) -> Endpoint:
        """Start the server configured for ``deployment``; returns once it answers right.

        Raises NotSupported for models other than the tiny ones and for more than one worker.
        """
        if deployment.model not in SUPPORTED_MODELS or files.name != deployment.model:
            raise NotSupported(f"{self.name} is benchmarked on {', '.join(SUPPORTED_MODELS)} only")
        if deployment.workers != 1:
            raise NotSupported(f"{self.name} is benchmarked with one worker only")
        if self._python is None or self._workdir is None:
            raise RuntimeError(f"{self.name}: install() and start() come before deploy()")
        self.stop()
        rundir = self._workdir / (
            f"{self.name}-{files.name}-b{deployment.batch_size}-{deployment.max_batch_delay_ms}ms"
        )
        shutil.rmtree(rundir, ignore_errors=True)
        pid_dir = rundir / "worker-pids"
        pid_dir.mkdir(parents=True)
        command, url = self.command(self._python, deployment, files, rundir)
        env = {
            **venv_env(self._python),
            **self.environment(deployment, files),
            PID_DIR_VARIABLE: str(pid_dir),
        }
        started = time.monotonic()
        self._server = ServerProcess(command, rundir, env, pid_dir)
        self._model = files.name
        try:
            self._await_right_answer(self._server, url, files)
        except BaseException:
            self.stop()
            raise
        return Endpoint(url, time.monotonic() - started)

    def _await_right_answer(self, server: ServerProcess, url: str, files: ModelFiles) -> None:
        """Send the request until the server answers it; fail on a wrong answer."""
        body, content_type = self.request_body(files)
        deadline = time.monotonic() + FIRST_ANSWER_DEADLINE_S
        with httpx.Client(timeout=ATTEMPT_TIMEOUT_S) as client:
            while True:
                if not server.alive():
                    raise server.fail(f"{self.name} exited with {server.process.returncode}")
                try:
                    response = client.post(
                        url, content=body, headers={"Content-Type": content_type}
                    )
                except httpx.TransportError:  # not listening yet
                    response = None
                if response is not None and not self.still_loading(response):
                    answer = self.answer_class(response.content)
                    if response.status_code == 200 and answer == files.expected_class:
                        return
                    raise server.fail(
                        f"{self.name} answered HTTP {response.status_code} "
                        f"{response.content[:300]!r}, expected class {files.expected_class}"
                    )
                if time.monotonic() > deadline:
                    raise server.fail(f"{self.name}: no answer in {FIRST_ANSWER_DEADLINE_S} s")
                time.sleep(POLL_S)

    def undeploy(self, model: str) -> None:
        """Stop the server process serving ``model``."""
        if model == self._model:
            self.stop()

    def root_pid(self) -> int:
        """The running deployment's server process, the root of all its processes."""
        if self._server is None:
            raise RuntimeError(f"{self.name}: no model deployed")
        return self._server.process.pid

    def memory_mb(self) -> dict[str, float]:
        """``{"frontend", "workers"}`` RSS in MiB of the running deployment's processes."""
        if self._server is None:
            raise RuntimeError(f"{self.name}: no model deployed")
        return self._server.memory_mb()

    def stop(self) -> None:
        """Stop the running deployment's processes, if any; safe to call again."""
        server, self._server, self._model = self._server, None, None
        if server is not None:
            server.stop()
