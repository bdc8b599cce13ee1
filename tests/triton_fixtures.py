"""What the Triton repository tests share: the pair model's config.pbtxt (inputs ``a`` FP32
and ``b`` INT64, outputs ``sum`` and ``product``, as ``framework_models.save_onnx_pair``
writes it) and a version directory holding its model file."""

from __future__ import annotations

import shutil
from pathlib import Path

PAIR_TENSORS = """
input [
  { name: "a" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "b" data_type: TYPE_INT64 dims: [ 4 ] }
]
output [
  { name: "sum" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "product" data_type: TYPE_FP32 dims: [ 4 ] }
]
"""


def pair_config(max_batch_size: int, scheduling: str = "") -> str:
    """config.pbtxt of the ONNX pair model, with ``scheduling`` (batching, instances …)."""
    return (
        f'name: "pair"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
        + PAIR_TENSORS
        + scheduling
    )


def add_version(model: Path, version: str, onnx: Path) -> None:
    """``model/version/model.onnx``, a copy of ``onnx``."""
    (model / version).mkdir(parents=True)
    shutil.copy(onnx, model / version / "model.onnx")
