"""Classify raw tensors: each request's body is one sample as float32 bytes (machine order),
or, through modelserve's ``/v2/models/{m}/infer``, an Open Inference Protocol JSON request
carrying it as its first input, then answered as a v2 response with the output ``class``.

The benchmark's TorchScript models reshape flat samples to their input shape themselves, so
this one handler serves every classifier of the comparison. It imports only torch and the
standard library, so the same file runs in TorchServe's python worker and in modelserve's.
Torch's thread count is left to whatever the serving process set. A worker given a GPU
(``gpu_id``) runs the model there, as TorchServe's own handlers do.
"""

from __future__ import annotations

import json
import warnings
from array import array
from pathlib import Path
from typing import Any

import torch

# A function handler has no instance to keep the model on; the worker loads it once.
_state: dict[str, torch.jit.ScriptModule] = {}
V2_OUTPUT = "class"


def _device(context: Any) -> torch.device:
    """The GPU the worker was given, or the CPU."""
    gpu_id = context.system_properties.get("gpu_id")
    return torch.device("cpu" if gpu_id is None else f"cuda:{gpu_id}")


def _load(context: Any) -> torch.jit.ScriptModule:
    """Load the archive's serialized TorchScript model onto the worker's device."""
    model_dir = Path(context.system_properties["model_dir"])
    path = model_dir / context.manifest["model"]["serializedFile"]
    with warnings.catch_warnings():
        # Recent torch flags TorchScript as deprecated; the notice would fill every worker log.
        warnings.filterwarnings("ignore", category=FutureWarning)
        model = torch.jit.load(str(path), map_location=_device(context))
    return model.eval()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[str] | None:
    """Answer each request of the batch with its predicted class index, as text.

    The load-time call (``data is None``) loads the model; a server that skips that call
    gets it loaded on the first batch instead.
    """
    if "model" not in _state:
        _state["model"] = _load(context)
    if data is None:
        return None
    payloads = [row.get("data") or row.get("body") for row in data]
    samples = [_sample(payload) for payload in payloads]
    size = len(samples[0])
    if any(len(sample) != size for sample in samples):
        raise ValueError("every request must carry one sample of float32 values, all one size")
    # Joining into a bytearray is the batch stacking (one copy) and makes the buffer writable,
    # which torch.frombuffer wants.
    batch = torch.frombuffer(bytearray().join(samples), dtype=torch.float32)
    with torch.inference_mode():
        logits = _state["model"](batch.view(len(samples), -1).to(_device(context)))
        classes = logits.argmax(dim=1).tolist()
    return [
        _v2_answer(index, context) if isinstance(payload, dict) else str(index)
        for payload, index in zip(payloads, classes, strict=True)
    ]


def _sample(payload: Any) -> bytes:
    """One request's sample as float32 bytes: a raw body as it came, a v2 request's first
    input (already parsed from JSON by the worker) packed from its values."""
    if isinstance(payload, bytes | bytearray):
        return payload
    if isinstance(payload, dict):
        return array("f", payload["inputs"][0]["data"]).tobytes()
    raise ValueError("a request must be raw float32 bytes or a v2 inference request")


def _v2_answer(index: int, context: Any) -> str:
    """A v2 inference response carrying the class index as the INT64 ``[1, 1]`` output."""
    output = {"name": V2_OUTPUT, "datatype": "INT64", "shape": [1, 1], "data": [index]}
    return json.dumps({"model_name": context.manifest["model"]["modelName"], "outputs": [output]})
