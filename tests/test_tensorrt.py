"""The TensorRT backend: a tiny engine built here with the TensorRT builder, then served.

Engines run on NVIDIA GPUs only, so all but the first test need one, and tensorrt.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from framework_models import BIAS, WEIGHT
from framework_models import SAMPLE as X
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_handlers.backends import ModelLoadError, load_model
from support import start_server

# TensorRT may run fp32 matrix products in TF32, which keeps 10 mantissa bits.
TOLERANCE = {"rtol": 1e-2, "atol": 1e-2}

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA"
)


def expected(x: np.ndarray) -> np.ndarray:
    """What the engine computes: relu(x @ W.T + b)."""
    return np.maximum(x @ WEIGHT.T + BIAS, 0)


@pytest.fixture(scope="module")
def engine_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """relu(x @ W.T + b) for x of shape (N, 4), N from 1 to 64, as a serialized engine."""
    trt = pytest.importorskip("tensorrt", reason="tensorrt is not installed")
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(0)
    x = network.add_input("x", trt.float32, (-1, 4))
    # The arrays must outlive the build: TensorRT keeps pointers to them until then.
    weight_values = np.ascontiguousarray(WEIGHT.T)
    bias_values = np.ascontiguousarray(BIAS.reshape(1, 3))
    weight = network.add_constant(weight_values.shape, trt.Weights(weight_values))
    bias = network.add_constant(bias_values.shape, trt.Weights(bias_values))
    product = network.add_matrix_multiply(
        x, trt.MatrixOperation.NONE, weight.get_output(0), trt.MatrixOperation.NONE
    )
    shifted = network.add_elementwise(
        product.get_output(0), bias.get_output(0), trt.ElementWiseOperation.SUM
    )
    relu = network.add_activation(shifted.get_output(0), trt.ActivationType.RELU)
    relu.get_output(0).name = "y"
    network.mark_output(relu.get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (8, 4), (64, 4))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "TensorRT could not build the engine"
    path = tmp_path_factory.mktemp("engine") / "tiny.engine"
    path.write_bytes(bytes(serialized))
    return path


def test_an_engine_on_a_cpu_worker_asks_for_a_gpu(tmp_path: Path) -> None:
    (tmp_path / "tiny.plan").write_bytes(b"not built on this machine")
    with pytest.raises(ModelLoadError, match="TensorRT engines need an NVIDIA GPU"):
        load_model(tmp_path, {"model": {"serializedFile": "tiny.plan"}}, "cpu")


@pytest.mark.gpu
@needs_cuda
def test_engine_runs_in_process(engine_file: Path) -> None:
    manifest = {"model": {"serializedFile": engine_file.name}}
    model = load_model(engine_file.parent, manifest, "cuda:0")
    assert (model.backend, model.input_names, model.output_names) == ("tensorrt", ["x"], ["y"])
    assert model.inputs[0].shape == (None, 4)
    assert np.allclose(model(X)["y"], expected(X), **TOLERANCE)


@pytest.mark.gpu
@needs_cuda
def test_engine_served_with_the_tensor_handler(engine_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    build_archive(
        ArchiveOptions(
            model_name="trt",
            version="1.0",
            serialized_file=str(engine_file),
            handler="tensor",
            export_path=store,
        )
    )
    server = start_server(tmp_path / "server", store, config={"number_of_gpu": "1"})
    try:
        params = {"url": "trt.mar", "initial_workers": 1}
        registered = httpx.post(f"{server.management}/models", params=params, timeout=120)
        assert registered.status_code == 200, registered.text
        response = httpx.post(
            f"{server.inference}/predictions/trt",
            content=json.dumps(X.tolist()).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert np.allclose(response.json(), expected(X), **TOLERANCE)
    finally:
        server.stop()
