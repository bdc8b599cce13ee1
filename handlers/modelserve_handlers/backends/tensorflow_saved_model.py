"""TensorFlow SavedModels, run through their ``serving_default`` signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelserve.protocol_contract import SAVED_MODEL_FILE

from .artifacts import saved_model_dir, serialized_name
from .model import LoadedModel, ModelLoadError, TensorSpec, feed_by_name, import_framework

FRAMEWORK = "TensorFlow"
SERVE_TAG = "serve"
SIGNATURE = "serving_default"


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """``tf.saved_model.load`` with the ``serve`` tag; calls go to ``serving_default``."""
    directory = saved_model_dir(model_dir, manifest)
    # Named as the archive names it: the directory itself is often the unpacked model dir.
    label = serialized_name(manifest) or SAVED_MODEL_FILE
    if directory is None:
        raise ModelLoadError(label, FRAMEWORK, f"no SavedModel ({SAVED_MODEL_FILE}) in the archive")
    tf = import_framework("tensorflow", "tensorflow", label, FRAMEWORK)
    placement = _tf_device(device)
    try:
        with tf.device(placement):
            loaded = tf.saved_model.load(str(directory), tags=[SERVE_TAG])
    except Exception as exc:  # TensorFlow raises its own and protobuf's types, not one base
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(label, FRAMEWORK, reason) from exc
    signature = loaded.signatures.get(SIGNATURE)
    if signature is None:
        found = ", ".join(loaded.signatures) or "none"
        raise ModelLoadError(
            label, FRAMEWORK, f"the SavedModel has no {SIGNATURE!r} signature (found {found})"
        )
    _, keyword_specs = signature.structured_input_signature
    inputs = tuple(_spec(name, spec) for name, spec in sorted(keyword_specs.items()))
    outputs = tuple(_spec(name, spec) for name, spec in signature.structured_outputs.items())
    input_names = [spec.name for spec in inputs]

    def run(feed: Any) -> dict[str, Any]:
        named = feed_by_name(feed, input_names)
        with tf.device(placement):
            results = signature(**{name: tf.convert_to_tensor(v) for name, v in named.items()})
        return {name: tensor.numpy() for name, tensor in results.items()}

    # The loaded object owns the variables the signature reads: keep it alive as the module.
    return LoadedModel("tensorflow", loaded, inputs, outputs, run)


def _tf_device(device: str) -> str:
    kind, _, index = device.partition(":")
    return f"/GPU:{index or 0}" if kind == "cuda" else "/CPU:0"


def _spec(name: str, spec: Any) -> TensorSpec:
    import numpy as np

    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(name, shape, np.dtype(spec.dtype.as_numpy_dtype))
