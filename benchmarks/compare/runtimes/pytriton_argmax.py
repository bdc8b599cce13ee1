"""Triton Inference Server through PyTriton for the benchmark's TorchScript classifiers (runs as
a script in PyTriton's venv).

    python pytriton_argmax.py MODEL_FILE MODEL_NAME HTTP_PORT GRPC_PORT METRICS_PORT
                              MAX_BATCH_SIZE MAX_QUEUE_DELAY_MS

PyTriton's wheel carries a real ``tritonserver``; it answers the v2 protocol on 127.0.0.1 and
hands each batch its dynamic batcher formed to the inference function in this process. The
model ``MODEL_NAME`` takes ``input__0`` FP32 ``[N, 1, 8, 8]`` and answers ``class`` INT64
``[N, 1]``: one forward pass, then each sample's argmax, as ``handlers/tensor_argmax.py``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

# The benchmark tells worker processes from the frontend by the pid files they leave here.
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"
LOOPBACK = "127.0.0.1"
SAMPLE_SHAPE = (1, 8, 8)


def link_own_libpython() -> None:
    """Point the dynamic linker at this interpreter's libpython before Triton starts.

    Triton's Python backend stub links ``libpython3.x.so``; found in the system's lib folder
    instead of this interpreter's (pyenv, a venv of another build), the stub's threading
    module does not match ours and every request fails
    (``'_thread.RLock' object has no attribute '_recursion_count'``).
    """
    own = sysconfig.get_config_var("LIBDIR")
    inherited = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = f"{own}{os.pathsep}{inherited}" if inherited else own


def load_model(model_file: str) -> torch.jit.ScriptModule:
    """The TorchScript model, in this process (PyTriton's inference functions run here)."""
    pid_dir = os.environ.get(PID_DIR_VARIABLE)
    if pid_dir:
        (Path(pid_dir) / str(os.getpid())).touch()
    with warnings.catch_warnings():
        # Recent torch flags TorchScript as deprecated; the notice would only add noise.
        warnings.filterwarnings("ignore", category=FutureWarning)
        return torch.jit.load(model_file, map_location="cpu").eval()


def main(argv: list[str]) -> None:
    """Start Triton with the one model; it serves until terminated."""
    model_file, model_name, http_port, grpc_port, metrics_port, max_batch, delay_ms = argv
    link_own_libpython()
    model = load_model(model_file)

    @batch
    def infer(input__0: np.ndarray) -> dict[str, np.ndarray]:
        """Each sample's class index, from one forward pass over the batch."""
        with torch.inference_mode():
            classes = model(torch.from_numpy(input__0)).argmax(dim=1)
        return {"class": classes.numpy().astype(np.int64)[:, None]}

    # Unbatched is a batch of at most one and no wait, so Triton's request path is the same.
    batcher = DynamicBatcher(max_queue_delay_microseconds=int(float(delay_ms) * 1000))
    config = TritonConfig(
        http_address=LOOPBACK,
        http_port=int(http_port),
        grpc_address=LOOPBACK,
        grpc_port=int(grpc_port),
        metrics_address=LOOPBACK,
        metrics_port=int(metrics_port),
        log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=model_name,
            infer_func=infer,
            inputs=[Tensor(name="input__0", dtype=np.float32, shape=SAMPLE_SHAPE)],
            outputs=[Tensor(name="class", dtype=np.int64, shape=(1,))],
            config=ModelConfig(max_batch_size=int(max_batch), batcher=batcher),
        )
        triton.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
