"""Triton Inference Server 2.x through PyTriton as a benchmark target.

``runtimes/pytriton_argmax.py`` binds the TorchScript model as a Python model of the
``tritonserver`` that PyTriton's wheel carries, with Triton's dynamic batcher (batch size and
queue delay from the deployment) and one model instance. Requests are v2 inference JSON, as
MLServer's, on Triton's own HTTP endpoint.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.server import free_loopback_ports

from compare.models import ModelFiles
from compare.open_inference import v2_answer_class, v2_request
from compare.servers import Deployment
from compare.spawned import RUNTIMES_DIR, SpawnedTarget

SERVER_SCRIPT = RUNTIMES_DIR / "pytriton_argmax.py"


class TritonTarget(SpawnedTarget):
    """``python runtimes/pytriton_argmax.py`` on free loopback ports."""

    name = "triton"
    # PyTriton 0.7.0 bundles Triton Inference Server 2.x (tritonserver and its Python backend).
    requirements = ["nvidia-pytriton==0.7.0"]
    # Stopped for the other servers' runs (80 s), PyTriton's proxy and tritonserver lose each
    # other and no longer answer: it stays running, its idle polling included.
    pausable = False

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """The server script with the model, ports and batching on its command line."""
        http_port, grpc_port, metrics_port = free_loopback_ports(3)
        command = [
            str(python),
            str(SERVER_SCRIPT),
            str(files.serialized),
            files.name,
            str(http_port),
            str(grpc_port),
            str(metrics_port),
            str(deployment.batch_size),
            str(deployment.max_batch_delay_ms),
        ]
        return command, f"http://127.0.0.1:{http_port}/v2/models/{files.name}/infer"

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """A v2 inference request, as MLServer gets it."""
        return v2_request(files)

    def answer_class(self, body: bytes) -> int | None:
        """The ``class`` output of Triton's v2 inference response."""
        return v2_answer_class(body)
