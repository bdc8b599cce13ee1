"""LitServe server for the benchmark's TorchScript classifiers (runs as a script in LitServe's
venv).

    python litserve_argmax.py MODEL_FILE PORT MAX_BATCH_SIZE BATCH_TIMEOUT_S

Serves ``POST /predict`` on 127.0.0.1:PORT with one inference worker on the CPU. LitServe
parses every request body as JSON, so a request is one sample as a JSON array of floats; the
answer is its class index as a JSON number, the very bytes ``handlers/tensor_argmax.py``
answers. The work per batch is the handler's: one forward pass, then each sample's argmax.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import litserve as ls
import torch

# The benchmark tells worker processes from the frontend by the pid files they leave here.
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"


class TensorArgmaxAPI(ls.LitAPI):
    """A TorchScript classifier behind LitServe's decode → batch → predict → unbatch → encode."""

    def __init__(self, model_file: str, max_batch_size: int, batch_timeout_s: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout_s)
        self.model_file = model_file

    def setup(self, device: str) -> None:
        """Load the model in the inference worker process."""
        pid_dir = os.environ.get(PID_DIR_VARIABLE)
        if pid_dir:
            (Path(pid_dir) / str(os.getpid())).touch()
        with warnings.catch_warnings():
            # Recent torch flags TorchScript as deprecated; the notice would only add noise.
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = torch.jit.load(self.model_file, map_location=device)
        self.model = model.eval()

    # LitServe builds the endpoint from the annotations of decode_request's ``request`` and of
    # encode_response's return: left out, the body is read as JSON and the answer sent as is.
    def decode_request(self, request):
        """One sample as a ``1 x features`` tensor; the model reshapes flat samples itself."""
        return torch.tensor(request, dtype=torch.float32).reshape(1, -1)

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Join single-sample tensors into one ``N x features`` batch."""
        return torch.cat(inputs)

    def predict(self, x: torch.Tensor) -> list[int]:
        """Each sample's class index, from a single forward pass over the batch; LitServe's
        default ``unbatch`` hands each request its own."""
        with torch.inference_mode():
            return self.model(x).argmax(dim=1).tolist()

    def encode_response(self, output):
        """The class index; unbatched, ``predict``'s list holds just this request's."""
        return output[0] if isinstance(output, list) else output


def main(argv: list[str]) -> None:
    """Start the server; it runs until terminated."""
    model_file, port, max_batch_size, batch_timeout_s = argv
    api = TensorArgmaxAPI(model_file, int(max_batch_size), float(batch_timeout_s))
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    # uvicorn logs every request at info level; a log line per request is not what is measured.
    server.run(host="127.0.0.1", port=int(port), log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main(sys.argv[1:])
