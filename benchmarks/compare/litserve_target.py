"""LitServe as a benchmark target: ``runtimes/litserve_argmax.py`` run in LitServe's venv.

One inference worker process on the CPU and LitServe's default single API server process;
batching is LitServe's own (``max_batch_size``, ``batch_timeout``) when the deployment
batches. LitServe parses request bodies as JSON, so the sample travels as a JSON array.
"""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.server import free_loopback_ports

from compare.models import ModelFiles
from compare.open_inference import JSON_TYPE, sample_values
from compare.servers import Deployment
from compare.spawned import RUNTIMES_DIR, SpawnedTarget

SERVER_SCRIPT = RUNTIMES_DIR / "litserve_argmax.py"


class LitServeTarget(SpawnedTarget):
    """``python runtimes/litserve_argmax.py`` on a free loopback port, answering ``/predict``."""

    name = "litserve"
    # Pinned so that reruns measure the same server. LitServe does not need numpy, but torch
    # warns at import in every process without it.
    requirements = ["litserve==0.2.19", "numpy"]

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """The server script with the model, port and batching on its command line."""
        (port,) = free_loopback_ports(1)
        command = [
            str(python),
            str(SERVER_SCRIPT),
            str(files.serialized),
            str(port),
            str(deployment.batch_size),
            str(deployment.max_batch_delay_ms / 1000),
        ]
        return command, f"http://127.0.0.1:{port}/predict"

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """The one sample as a flat JSON array of floats."""
        return json.dumps(sample_values(files)).encode(), JSON_TYPE

    def answer_class(self, body: bytes) -> int | None:
        """The class index LitServe returns as a bare JSON number."""
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        return answer if isinstance(answer, int) else None
