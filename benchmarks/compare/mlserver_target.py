"""MLServer 1.7.1 as a benchmark target: a custom runtime over the v2 inference protocol.

The model is served by ``runtimes/mlserver_argmax.py``, the same forward pass and argmax as
``handlers/tensor_argmax.py``. MLServer runs with its defaults where the benchmark has no
reason to differ: one inference worker process beside the HTTP frontend
(``parallel_workers: 1``), adaptive batching when the deployment batches. ``debug`` is off,
which turns off uvicorn's line per request.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
from loadtest.server import free_loopback_ports

from compare.models import ModelFiles
from compare.open_inference import v2_answer_class, v2_request
from compare.servers import Deployment
from compare.spawned import RUNTIMES_DIR, SpawnedTarget

RUNTIME_FILE = RUNTIMES_DIR / "mlserver_argmax.py"
RUNTIME_CLASS = "mlserver_argmax.TensorArgmaxRuntime"
# MLServer answers 400 with this while the model loads (the HTTP server starts first).
LOADING_MESSAGE = b"is not ready yet"


class MLServerTarget(SpawnedTarget):
    """``mlserver start`` on a model folder written for each deployment, on loopback ports."""

    name = "mlserver"
    # MLServer 1.7.1 leaves uvloop unpinned, and its worker processes fail at start with
    # uvloop 0.22 ("There is no current event loop"), so the last working release is pinned.
    requirements = ["mlserver==1.7.1", "uvloop<0.22"]

    def command(
        self, python: Path, deployment: Deployment, files: ModelFiles, rundir: Path
    ) -> tuple[list[str], str]:
        """Write ``settings.json`` and the model folder; the command serves ``rundir``."""
        http_port, grpc_port, metrics_port = free_loopback_ports(3)
        settings = {
            "host": "127.0.0.1",
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
            "parallel_workers": deployment.workers,
            "debug": False,
        }
        (rundir / "settings.json").write_text(json.dumps(settings, indent=2))
        model_dir = rundir / files.name
        model_dir.mkdir()
        # MLServer imports the runtime from the folder holding model-settings.json.
        shutil.copy(RUNTIME_FILE, model_dir)
        model_settings = {
            "name": files.name,
            "implementation": RUNTIME_CLASS,
            "parameters": {"uri": str(files.serialized)},
        }
        if deployment.batch_size > 1:
            model_settings["max_batch_size"] = deployment.batch_size
            model_settings["max_batch_time"] = deployment.max_batch_delay_ms / 1000
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        command = [str(python.parent / "mlserver"), "start", str(rundir)]
        return command, f"http://127.0.0.1:{http_port}/v2/models/{files.name}/infer"

    def request_body(self, files: ModelFiles) -> tuple[bytes, str]:
        """A v2 inference request carrying the one sample as an FP32 ``[1, ...shape]`` tensor."""
        return v2_request(files)

    def answer_class(self, body: bytes) -> int | None:
        """The ``class`` output of a v2 inference response."""
        return v2_answer_class(body)

    def still_loading(self, response: httpx.Response) -> bool:
        """MLServer's HTTP server is up before the model: it answers 400 "not ready" then."""
        return response.status_code == 400 and LOADING_MESSAGE in response.content
