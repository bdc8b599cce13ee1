"""Ray Serve as a benchmark target: ``runtimes/rayserve_argmax.py`` run in Ray's venv.

One replica on a one-node Ray cluster kept on loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
and free loopback ports), answering raw float32 bodies as
modelserve and TorchServe do; batching through ``@serve.batch`` when the deployment batches.
Ray's default ``max_ongoing_requests`` (5) caps a replica at 5 requests in flight, so a
replica can neither batch 8 nor keep up with 64 connections: :class:`RayServeTarget` allows
64, :class:`RayServeDefaultTarget` measures the default.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.server import free_loopback_ports

from compare.models import ModelFiles
from compare.servers import Deployment
from compare.spawned import RUNTIMES_DIR, SpawnedTarget

SERVER_SCRIPT = RUNTIMES_DIR / "rayserve_argmax.py"
RAW_TYPE = "application/octet-stream"


class RayServeTarget(SpawnedTarget):
    """``python runtimes/rayserve_argmax.py`` on free loopback ports, 64 requests in flight."""

    name = "rayserve"
    venv_name = "rayserve"
    requirements = ["ray[serve]==2.60.0"]
    max_ongoing_requests = 64

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """The server script with the model, ports, concurrency and batching."""
        http_port, gcs_port, agent_port, client_port = free_loopback_ports(4)
        command = [
            str(python),
            str(SERVER_SCRIPT),
            str(files.serialized),
            str(http_port),
            str(gcs_port),
            str(agent_port),
            str(client_port),
            str(self.max_ongoing_requests),
            str(deployment.batch_size),
            str(deployment.max_batch_delay_ms),
        ]
        return command, f"http://127.0.0.1:{http_port}/"

    def environment(self, deployment: Deployment, files: ModelFiles) -> dict[str, str]:
        """Ray on loopback only (see the runtime's docstring), and no usage reports."""
        return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """The shared raw float32 body."""
        return files.body, RAW_TYPE

    def answer_class(self, body: bytes) -> int | None:
        """The class index, answered as text."""
        text = body.strip()
        return int(text) if text.isdigit() else None


class RayServeDefaultTarget(RayServeTarget):
    """The same with Ray Serve's default ``max_ongoing_requests`` of 5."""

    name = "rayserve-default"
    max_ongoing_requests = 5
