"""Ray Serve for the benchmark's TorchScript classifiers (runs as a script in Ray's venv).

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 \
        python rayserve_argmax.py MODEL_FILE HTTP_PORT GCS_PORT AGENT_PORT CLIENT_PORT
                                  MAX_ONGOING_REQUESTS MAX_BATCH_SIZE BATCH_WAIT_MS

Starts a one-node Ray cluster on 127.0.0.1 as a child of this process (``ray start --head
--block``, so every Ray process stays in this process's tree), deploys one replica answering
``POST /`` on 127.0.0.1:HTTP_PORT, and waits for the cluster to end. A request's body is one
sample as raw float32 bytes, as modelserve's and TorchServe's; the answer is its class index as
text, the very bytes ``handlers/tensor_argmax.py`` answers. Batched deployments go through
``@serve.batch``. The variable keeps every Ray process on loopback: without it Ray's client
server binds to the machine's external address, whatever ``--node-ip-address`` says. (Ray
Serve still binds each replica's internal gRPC server to all interfaces, ``[::]:0``: not a
setting.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import ray
import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import PlainTextResponse

# The benchmark tells worker processes from the frontend by the pid files they leave here.
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"
LOOPBACK = "127.0.0.1"
CONNECT_DEADLINE_S = 120
POLL_S = 0.5


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class TensorArgmax:
    """One replica holding the model; batches through ``@serve.batch`` when asked to."""

    def __init__(self, model_file: str, max_batch_size: int, batch_wait_s: float) -> None:
        pid_dir = os.environ.get(PID_DIR_VARIABLE)
        if pid_dir:
            (Path(pid_dir) / str(os.getpid())).touch()
        with warnings.catch_warnings():
            # Recent torch flags TorchScript as deprecated; the notice would only add noise.
            warnings.filterwarnings("ignore", category=FutureWarning)
            self.model = torch.jit.load(model_file, map_location="cpu").eval()
        self.batched = max_batch_size > 1
        if self.batched:
            self.classify_batch.set_max_batch_size(max_batch_size)
            self.classify_batch.set_batch_wait_timeout_s(batch_wait_s)

    def classify(self, samples: list[bytes]) -> list[str]:
        """Each sample's class index, from one forward pass over the batch."""
        batch = torch.frombuffer(bytearray().join(samples), dtype=torch.float32)
        with torch.inference_mode():
            classes = self.model(batch.view(len(samples), -1)).argmax(dim=1).tolist()
        return [str(index) for index in classes]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def classify_batch(self, samples: list[bytes]) -> list[str]:
        """The requests Serve gathered, classified together (limits set in ``__init__``)."""
        return self.classify(samples)

    async def __call__(self, request: Request) -> PlainTextResponse:
        """One request: its body classified alone or in a batch."""
        sample = await request.body()
        if self.batched:
            return PlainTextResponse(await self.classify_batch(sample))
        return PlainTextResponse(self.classify([sample])[0])


def start_cluster(gcs_port: str, agent_port: str, client_port: str) -> subprocess.Popen:
    """``ray start --head --block`` on loopback with the given ports, and a driver connected.

    Ray picks its other ports itself; these three have fixed defaults (6379, 52365, 10001)
    that a second cluster on the machine would collide with.
    """
    cluster = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            f"--node-ip-address={LOOPBACK}",
            f"--port={gcs_port}",
            f"--dashboard-agent-listen-port={agent_port}",
            f"--ray-client-server-port={client_port}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
    )
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        if cluster.poll() is not None:
            raise SystemExit(f"ray start exited with {cluster.returncode}")
        try:
            ray.init(address=f"{LOOPBACK}:{gcs_port}", logging_level="warning")
            return cluster
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


def main(argv: list[str]) -> None:
    """Start the cluster, deploy the replica, then serve until terminated."""
    model_file, http_port, gcs_port, agent_port, client_port, max_ongoing, max_batch, wait_ms = argv
    cluster = start_cluster(gcs_port, agent_port, client_port)
    # No line per request: what is measured is serving, not logging.
    logging_config = {"log_level": "WARNING", "enable_access_log": False}
    http_options = {"host": LOOPBACK, "port": int(http_port)}
    serve.start(http_options=http_options, logging_config=logging_config)
    deployment = TensorArgmax.options(max_ongoing_requests=int(max_ongoing))
    app = deployment.bind(model_file, int(max_batch), float(wait_ms) / 1000)
    serve.run(app, route_prefix="/", logging_config=logging_config)
    sys.exit(cluster.wait())


if __name__ == "__main__":
    main(sys.argv[1:])
