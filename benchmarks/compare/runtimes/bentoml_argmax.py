"""BentoML service for the benchmark's TorchScript classifiers (served by ``bentoml serve`` in
BentoML's venv; configured by environment variables, read when the service is imported).

    BENCH_MODEL_FILE=... BENCH_MAX_BATCH_SIZE=8 \\
        bentoml serve bentoml_argmax:TensorArgmax --host 127.0.0.1 --port PORT

One worker process answers ``POST /classify`` with a JSON body ``{"samples": [[...]]}``, the
one sample as a ``1 x features`` array; the answer is its class index as a JSON array, ``[7]``.
With ``BENCH_MAX_BATCH_SIZE`` above 1 the API is ``batchable``: BentoML's adaptive batching
joins requests along the first axis, up to that many. BentoML has no batching wait to set:
its ``max_latency_ms`` is a deadline past which requests are refused (503), so it is set far
above any latency the benchmark sees.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import bentoml
import numpy as np
import torch

# The benchmark tells worker processes from the frontend by the pid files they leave here.
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"
MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "1"))
DEADLINE_MS = 60_000


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class TensorArgmax:
    """A TorchScript classifier: one forward pass per (possibly batched) call."""

    def __init__(self) -> None:
        pid_dir = os.environ.get(PID_DIR_VARIABLE)
        if pid_dir:
            (Path(pid_dir) / str(os.getpid())).touch()
        with warnings.catch_warnings():
            # Recent torch flags TorchScript as deprecated; the notice would only add noise.
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = torch.jit.load(os.environ["BENCH_MODEL_FILE"], map_location="cpu")
        self.model = model.eval()

    # BentoML refuses a max_batch_size of 1, so unbatched leaves batching settings out.
    @bentoml.api(
        **(
            {"batchable": True, "max_batch_size": MAX_BATCH_SIZE, "max_latency_ms": DEADLINE_MS}
            if MAX_BATCH_SIZE > 1
            else {}
        )
    )
    def classify(self, samples: np.ndarray) -> np.ndarray:
        """Each sample's class index."""
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(samples.astype(np.float32)))
        return logits.argmax(dim=1).numpy()
