"""TorchServe 0.12 as a benchmark target, from its own venv, configured like modelserve.

The server gets the same handler files and TorchScript models as modelserve (packed by
TorchServe's own ``torch-model-archiver``), listens on free loopback ports only, and is
deployed through its management API exactly as modelserve is.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from loadtest.server import free_loopback_ports

from compare.models import ModelFiles, prepare_models
from compare.servers import (
    POLL_S,
    REGISTER_TIMEOUT_S,
    Deployment,
    Endpoint,
    register_and_answer,
)
from compare.venvs import ensure_venv, venv_env

VERSION = "0.12.0"
# pyyaml: the python worker imports it (model config and metrics cache) but TorchServe's
# wheel does not declare it. nvgpu, TorchServe's GPU metrics dependency, is left out: the
# benchmark runs on CPU and pins number_of_gpu=0.
REQUIREMENTS = [f"torchserve=={VERSION}", f"torch-model-archiver=={VERSION}", "pyyaml"]
START_DEADLINE_S = 120
WORKERS_GONE_DEADLINE_S = 30
STOP_DEADLINE_S = 30
LOG_TAIL_CHARS = 4000
MIB = 1024 * 1024
FRONTEND_CLASS = "org.pytorch.serve.ModelServer"
WORKER_SCRIPT = "model_service_worker.py"
# G1 and exit-on-OOM as in TorchServe's documented vmargs example, but a 1 GiB heap cap
# instead of its 128 MiB, so queues of 600 KB ResNet bodies under high concurrency fit.
VMARGS = "-Xmx1g -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError"


class TorchServeError(RuntimeError):
    """TorchServe did not install, start, register a model or answer as expected."""


class TorchServeTarget:
    """``torchserve --start --foreground`` in a venv of its own, on free loopback ports."""

    name = "torchserve"

    def __init__(self) -> None:
        self._python: Path | None = None
        self._process: subprocess.Popen | None = None
        self._tmp: Path | None = None
        self._store: Path | None = None
        self._log: Path | None = None
        self._archived: set[str] = set()
        self._inference = ""
        self._management = ""

    def install(self, cache: Path) -> None:
        """Create (once) the ``torchserve`` venv under ``cache``: TorchServe, its archiver,
        and CPU torch; Java 17 must already be on the machine."""
        if shutil.which("java") is None:
            raise TorchServeError("TorchServe needs Java 17 (a `java` on PATH); none found")
        self._python = ensure_venv(cache, "torchserve", REQUIREMENTS)

    def _script(self, name: str) -> Path:
        """A console script of the TorchServe venv."""
        if self._python is None:
            raise TorchServeError("TorchServeTarget.install() was not called")
        return self._python.parent / name

    def _fail(self, message: str) -> TorchServeError:
        """An error carrying ``message`` and the tail of TorchServe's console output."""
        tail = self._log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if self._log else ""
        return TorchServeError(f"{message}\n--- torchserve output (tail) ---\n{tail}")

    def _write_config(self, workdir: Path) -> Path:
        """A ``config.properties`` with every plane on a free loopback port."""
        ports = free_loopback_ports(5)
        self._inference = f"http://127.0.0.1:{ports[0]}"
        self._management = f"http://127.0.0.1:{ports[1]}"
        properties = {
            "inference_address": self._inference,
            "management_address": self._management,
            "metrics_address": f"http://127.0.0.1:{ports[2]}",
            # TorchServe always starts its gRPC servers; keep them off the default ports.
            "grpc_inference_address": "127.0.0.1",
            "grpc_management_address": "127.0.0.1",
            "grpc_inference_port": ports[3],
            "grpc_management_port": ports[4],
            "model_store": self._store,
            "disable_token_authorization": "true",
            "enable_model_api": "true",
            "default_workers_per_model": 1,
            "install_py_dep_per_model": "false",
            "number_of_gpu": 0,
            # Metrics kept in memory for scraping rather than appended to log files.
            "metrics_mode": "prometheus",
            "vmargs": VMARGS,
        }
        config = workdir / "config.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        return config

    def start(self, workdir: Path) -> float:
        """Start TorchServe with an empty model store; seconds until /ping says Healthy."""
        if self._process is not None:
            raise TorchServeError("TorchServe is already started")
        torchserve = self._script("torchserve")
        workdir.mkdir(parents=True, exist_ok=True)
        self._store = workdir / "model_store"
        self._store.mkdir(exist_ok=True)
        self._archived.clear()
        config = self._write_config(workdir)
        # A private temp dir holds what TorchServe keeps in the system one (its pid file,
        # which would make a second TorchServe refuse to start, the workers' Unix sockets,
        # unpacked archives); under /tmp so socket paths stay short.
        self._tmp = Path(tempfile.mkdtemp(prefix="ts-bench-"))
        env = venv_env(self._script("python"))
        env.update(
            TEMP=str(self._tmp),
            TMPDIR=str(self._tmp),
            LOG_LOCATION=str(workdir / "logs"),
            METRICS_LOCATION=str(workdir / "logs"),
        )
        command = [str(torchserve), "--start", "--foreground", "--ncs"]
        command += ["--ts-config", str(config)]
        self._log = workdir / "torchserve.log"
        atexit.register(self.stop)
        started = time.monotonic()
        with self._log.open("wb") as log:
            # A session of its own: stop() can then reach the launcher, the Java frontend and
            # every worker through one process group, whatever state they are in.
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def _wait_healthy(self, started: float) -> None:
        """Poll /ping until it answers 200 Healthy."""
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise self._fail(f"torchserve exited with {self._process.returncode}")
            try:
                response = httpx.get(self._inference + "/ping", timeout=2)
                if response.status_code == 200 and response.json().get("status") == "Healthy":
                    return
            except (httpx.TransportError, ValueError):
                pass  # not listening yet, or still answering something else
            if time.monotonic() - started > START_DEADLINE_S:
                raise self._fail(f"torchserve not Healthy after {START_DEADLINE_S} s")
            time.sleep(POLL_S)

    def _archive(self, files: ModelFiles) -> str:
        """Pack ``files`` as ``<name>.mar`` with TorchServe's own archiver, once per start:
        a reused workdir may hold an archive of an older handler or model."""
        assert self._store is not None
        archive = self._store / f"{files.name}.mar"
        if files.name not in self._archived:
            command = [str(self._script("torch-model-archiver")), "--model-name", files.name]
            command += ["--version", "1.0", "--handler", str(files.handler)]
            if files.serialized is not None:
                command += ["--serialized-file", str(files.serialized)]
            command += ["--export-path", str(self._store), "--force"]
            result = subprocess.run(
                command,
                env=venv_env(self._script("python")),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if result.returncode != 0 or not archive.exists():
                raise TorchServeError(
                    f"torch-model-archiver failed for {files.name}:\n{result.stdout}"
                )
            self._archived.add(files.name)
        return archive.name

    def deploy(self, deployment: Deployment, files: ModelFiles) -> Endpoint:
        """Register the archive with the deployment's workers and batching, synchronously.

        ``register_s`` runs from the register call to the first right answer, so it covers
        worker start, handler import and model load.
        """
        if self._process is None:
            raise TorchServeError("TorchServe is not started")
        return register_and_answer(
            self._management,
            self._inference,
            self._archive(files),
            files,
            deployment,
            self._fail,
            retry_unavailable=True,
        )

    def undeploy(self, model: str) -> None:
        """Unregister ``model`` and wait until its worker processes are gone, so the next
        deployment's memory reading starts clean."""
        response = httpx.delete(f"{self._management}/models/{model}", timeout=REGISTER_TIMEOUT_S)
        if response.status_code != 200:
            raise self._fail(f"unregistering {model}: HTTP {response.status_code} {response.text}")
        deadline = time.monotonic() + WORKERS_GONE_DEADLINE_S
        while self._workers() and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def _tree(self) -> list[psutil.Process]:
        """Every live process below the launcher."""
        if self._process is None:
            return []
        try:
            return psutil.Process(self._process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def _workers(self) -> list[psutil.Process]:
        """TorchServe's python model workers (not its periodic metrics collector)."""
        return [p for p in self._tree() if _cmdline_has(p, WORKER_SCRIPT)]

    def root_pid(self) -> int:
        """The ``torchserve`` launcher, parent of the Java frontend and its Python workers."""
        if self._process is None:
            raise TorchServeError("TorchServe is not started")
        return self._process.pid

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of the Java frontend and, summed, of its python model workers.

        The ``torchserve`` launcher only waits on Java (without ``--foreground`` it would
        have exited), so it is not counted.
        """
        frontend = [p for p in self._tree() if _cmdline_has(p, FRONTEND_CLASS)]
        return {
            "frontend": sum(_rss(p) for p in frontend) / MIB,
            "workers": sum(_rss(p) for p in self._workers()) / MIB,
        }

    def stop(self) -> None:
        """Stop the frontend gracefully, then kill whatever is left; safe to call twice."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            _stop_tree(process)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _cmdline_has(process: psutil.Process, part: str) -> bool:
    """Whether any argument of ``process`` contains ``part`` (False once it has exited)."""
    try:
        return any(part in argument for argument in process.cmdline())
    except psutil.Error:
        return False


def _rss(process: psutil.Process) -> int:
    """Resident bytes of ``process``; 0 once it has exited."""
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _stop_tree(launcher: subprocess.Popen) -> None:
    """SIGTERM the Java frontend (it stops its workers), then SIGKILL the launcher's process
    group and any straggler that left it."""
    try:
        tree = psutil.Process(launcher.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    frontend = [p for p in tree if _cmdline_has(p, FRONTEND_CLASS)]
    for process in frontend:
        process.terminate()
    # The launcher returns as soon as Java has exited; the workers follow Java down.
    with contextlib.suppress(subprocess.TimeoutExpired):
        if frontend:
            launcher.wait(STOP_DEADLINE_S)
    _, alive = psutil.wait_procs(tree, timeout=5 if frontend else 0)
    with contextlib.suppress(ProcessLookupError):  # the whole group may be gone already
        os.killpg(launcher.pid, signal.SIGKILL)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    launcher.wait()


def self_check(cache: Path, workdir: Path, targets: list[str]) -> None:
    """Serve every model with each target, unbatched and batched, and print what it took.

    Run by hand from ``benchmarks/``: ``python -m compare.torchserve_target [--modelserve]``.
    The modelserve leg proves the very same handler files serve in both servers.
    """
    # Only this hand-run check needs the other target; keep it out of the module's imports.
    from compare.modelserve_target import ModelserveTarget

    models = prepare_models(workdir)
    deployments = [Deployment(name, 1, 1, 0) for name in models]
    deployments += [Deployment(name, 1, 8, 5) for name in models]
    available = {"torchserve": TorchServeTarget, "modelserve": ModelserveTarget}
    for target_name in targets:
        target = available[target_name]()
        started = time.monotonic()
        target.install(cache)
        print(f"{target_name}: install {time.monotonic() - started:.1f} s")
        try:
            cold = target.start(workdir / target_name)
            print(f"{target_name}: cold start {cold:.2f} s, memory {target.memory_mb()}")
            for deployment in deployments:
                files = models[deployment.model]
                endpoint = target.deploy(deployment, files)
                latencies = _latencies_ms(endpoint.url, files, count=20)
                print(
                    f"{target_name}: {deployment.model} batch {deployment.batch_size}: "
                    f"register {endpoint.register_s:.2f} s, sequential latency "
                    f"p50 {latencies[len(latencies) // 2]:.2f} ms max {latencies[-1]:.2f} ms, "
                    f"memory {target.memory_mb()}"
                )
                target.undeploy(deployment.model)
        finally:
            target.stop()


def _latencies_ms(url: str, files: ModelFiles, count: int) -> list[float]:
    """Sorted latencies of ``count`` back-to-back requests, each answer checked."""
    latencies = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post(
                url, content=files.body, headers={"Content-Type": files.content_type}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or not files.answer_ok(response.content):
                raise TorchServeError(
                    f"{url}: HTTP {response.status_code} {response.content[:200]!r}"
                )
    return sorted(latencies)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve every model once with TorchServe.")
    parser.add_argument("--cache", type=Path, default=Path("results/tmp/venvs"))
    parser.add_argument("--workdir", type=Path, default=Path("results/tmp/torchserve-check"))
    parser.add_argument("--modelserve", action="store_true", help="also serve them with modelserve")
    args = parser.parse_args()
    chosen = ["torchserve", "modelserve"] if args.modelserve else ["torchserve"]
    self_check(args.cache.resolve(), args.workdir.resolve(), chosen)
