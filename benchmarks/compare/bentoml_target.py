"""BentoML 1.4 as a benchmark target: ``runtimes/bentoml_argmax.py`` under ``bentoml serve``.

One worker process; adaptive batching (``batchable=True``, ``max_batch_size``) when the
deployment batches. BentoML's batching has no wait to configure, so the deployment's 5 ms
is not passed on (its ``max_latency_ms`` is a deadline, see the runtime's docstring).
"""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.server import free_loopback_ports

from compare.models import ModelFiles
from compare.open_inference import JSON_TYPE, sample_values
from compare.servers import Deployment
from compare.spawned import RUNTIMES_DIR, SpawnedTarget

SERVICE = "bentoml_argmax:TensorArgmax"


class BentoMLTarget(SpawnedTarget):
    """``bentoml serve`` on a free loopback port, answering ``/classify``."""

    name = "bentoml"
    requirements = ["bentoml==1.4.40"]

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """``bentoml serve`` of the runtime folder; the model and batching go by environment
        (see :meth:`environment`)."""
        (port,) = free_loopback_ports(1)
        command = [
            str(python.parent / "bentoml"),
            "serve",
            SERVICE,
            "--working-dir",
            str(RUNTIMES_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return command, f"http://127.0.0.1:{port}/classify"

    def environment(self, deployment: Deployment, files: ModelFiles) -> dict[str, str]:
        """The model file and batch size for the runtime, and no usage tracking."""
        return {
            "BENCH_MODEL_FILE": str(files.serialized),
            "BENCH_MAX_BATCH_SIZE": str(deployment.batch_size),
            "BENTOML_DO_NOT_TRACK": "True",
        }

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """The one sample as a ``1 x features`` JSON array under the API's argument name."""
        return json.dumps({"samples": [sample_values(files)]}).encode(), JSON_TYPE

    def answer_class(self, body: bytes) -> int | None:
        """The class index BentoML returns as a one-element JSON array."""
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        return answer[0] if isinstance(answer, list) and answer else None
