"""Paddle inference models (Paddle Serving's ``model_config`` directories) on Paddle
Inference: the program (``.pdmodel``, or the ``.json`` Paddle 3 writes) and its parameters
(``.pdiparams``, same stem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelserve.protocol_contract import PADDLE_PARAMS_SUFFIX

from .artifacts import require_serialized_file
from .model import LoadedModel, ModelLoadError, TensorSpec, feed_by_name, import_framework

FRAMEWORK = "Paddle Inference"


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """A Paddle Inference predictor, on the GPU ``device`` names (else the CPU)."""
    path = require_serialized_file(model_dir, manifest, FRAMEWORK)
    params = path.with_suffix(PADDLE_PARAMS_SUFFIX)
    if not params.is_file():
        raise ModelLoadError(path, FRAMEWORK, f"its parameters {params.name} are not beside it")
    import_framework("paddle", "paddle", path, FRAMEWORK)
    import numpy as np
    from paddle import inference

    config = inference.Config(str(path), str(params))
    if device.startswith("cuda"):
        _, _, index = device.partition(":")
        config.enable_use_gpu(256, int(index or 0))  # MB of GPU memory to start the pool with
    else:
        config.disable_gpu()
    config.disable_glog_info()
    try:
        predictor = inference.create_predictor(config)
    except Exception as exc:  # Paddle raises its own types, not one base
        raise ModelLoadError(path, FRAMEWORK, str(exc) or type(exc).__name__) from exc
    input_names = list(predictor.get_input_names())
    output_names = list(predictor.get_output_names())

    def run(feed: Any) -> dict[str, Any]:
        for name, value in feed_by_name(feed, input_names).items():
            handle = predictor.get_input_handle(name)
            array = np.ascontiguousarray(value)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        predictor.run()
        return {name: predictor.get_output_handle(name).copy_to_cpu() for name in output_names}

    return LoadedModel(
        "paddle",
        predictor,
        tuple(_spec(name, predictor.get_input_handle(name)) for name in input_names),
        tuple(_spec(name, predictor.get_output_handle(name)) for name in output_names),
        run,
    )


def _spec(name: str, handle: Any) -> TensorSpec:
    """The tensor's dtype (``PaddleDType.FLOAT32`` → float32); its shape is known only once
    it has run."""
    import numpy as np

    try:
        dtype = np.dtype(str(handle.type()).rpartition(".")[2].lower())
    except TypeError:  # BF16 and other types numpy has no dtype for
        dtype = None
    return TensorSpec(name, None, dtype)
