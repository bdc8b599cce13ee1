"""The ``tensor`` handler on every CPU backend, through the real server.

One server serves tiny models of each framework, built here and archived with
``--handler tensor``; each answer is compared with the framework itself called in-process.
Also: the .npy and named-tensor formats, batching, 400s that name the problem, and the eager
backend refusing a state dict that would run code when unpickled.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from framework_models import (
    MODEL_FILE,
    save_eager,
    save_malicious_state_dict,
    save_onnx_linear,
    save_onnx_pair,
    save_tf_saved_model,
    save_torchscript,
)
from framework_models import (
    SAMPLE as X,
)
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_handlers.backends import ModelLoadError, detect_backend, load_model
from modelserve_handlers.tensor_io.batching import run_requests
from support import RunningServer, start_server

# torch.jit is deprecated in recent torch, and still what TorchScript users archive.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning")

SINGLE_INPUT_MODELS = ["torchscript", "eager", "onnx", "tensorflow"]
JSON = "application/json"
NPY = "application/x-npy"


@dataclass
class Served:
    """The server, its model store, and each model's in-process reference."""

    server: RunningServer
    store: Path
    references: dict[str, Callable[..., Any]]

    def predict(self, model: str, body: bytes, content_type: str | None = JSON) -> httpx.Response:
        headers = {"content-type": content_type} if content_type else {}
        return httpx.post(
            f"{self.server.inference}/predictions/{model}", content=body, headers=headers
        )


def archive(store: Path, name: str, **files: Any) -> str:
    """Archive a model for the built-in ``tensor`` handler, as a user would."""
    build_archive(
        ArchiveOptions(
            model_name=name, version="1.0", handler="tensor", export_path=store, force=True, **files
        )
    )
    return f"{name}.mar"


def register(server: RunningServer, url: str) -> httpx.Response:
    """Register synchronously with one worker that batches up to 8 requests."""
    params = {"url": url, "initial_workers": 1, "batch_size": 8, "max_batch_delay": 50}
    return httpx.post(f"{server.management}/models", params=params, timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One model per backend, archived for the ``tensor`` handler, on one server."""
    build = tmp_path_factory.mktemp("tensor_models")
    store = tmp_path_factory.mktemp("tensor_store")
    torchscript, torchscript_reference = save_torchscript(build)
    model_file, state_dict, eager_reference = save_eager(build)
    onnx_file, onnx_reference = save_onnx_linear(build)
    pair_file, pair_reference = save_onnx_pair(build)
    saved_model, tf_reference = save_tf_saved_model(build, [X, X[:1]])
    archives = [
        archive(store, "torchscript", serialized_file=str(torchscript)),
        archive(store, "eager", serialized_file=str(state_dict), model_file=str(model_file)),
        archive(store, "onnx", serialized_file=str(onnx_file)),
        archive(store, "pair", serialized_file=str(pair_file)),
        # A SavedModel is a directory: its content goes in with --extra-files.
        archive(store, "tensorflow", extra_files=[str(saved_model)]),
    ]
    server = start_server(tmp_path_factory.mktemp("tensor_server"), store)
    try:
        with ThreadPoolExecutor(len(archives)) as pool:
            for response in pool.map(lambda url: register(server, url), archives):
                assert response.status_code == 200, response.text
        references = {
            "torchscript": torchscript_reference,
            "eager": eager_reference,
            "onnx": onnx_reference,
            "pair": pair_reference,
            "tensorflow": tf_reference,
        }
        yield Served(server, store, references)
    finally:
        server.stop()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("model", SINGLE_INPUT_MODELS)
def test_json_answers_match_the_framework(served: Served, model: str) -> None:
    expected = served.references[model](X)
    response = served.predict(model, json.dumps(X.tolist()).encode())
    assert response.status_code == 200, response.text
    assert np.allclose(response.json(), expected, atol=1e-6)
    wrapped = served.predict(model, json.dumps({"data": X[:1].tolist()}).encode())
    assert np.allclose(wrapped.json(), expected[:1], atol=1e-6)


@pytest.mark.parametrize("model", SINGLE_INPUT_MODELS)
def test_npy_in_npy_out(served: Served, model: str) -> None:
    response = served.predict(model, npy_bytes(X), NPY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == NPY
    answer = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert answer.dtype == np.float32
    assert np.allclose(answer, served.references[model](X), atol=1e-6)
    # The magic bytes are enough, whatever the content type says.
    untyped = served.predict(model, npy_bytes(X), "application/octet-stream")
    assert np.allclose(np.load(io.BytesIO(untyped.content)), served.references[model](X))


def test_named_tensors_in_and_out(served: Served) -> None:
    b = np.array([[1, 2, 3, 4], [-1, 0, 1, 2]], dtype=np.int64)
    body = {
        "id": "req-7",
        "inputs": [
            {"name": "a", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()},
            {"name": "b", "shape": [2, 4], "datatype": "INT64", "data": b.tolist()},
        ],
    }
    expected = served.references["pair"](a=X, b=b)
    response = served.predict("pair", json.dumps(body).encode())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model_name"], answer["id"]) == ("pair", "req-7")
    assert [output["name"] for output in answer["outputs"]] == ["sum", "product"]
    for output in answer["outputs"]:
        assert (output["shape"], output["datatype"]) == ([2, 4], "FP32")
        assert np.allclose(np.reshape(output["data"], (2, 4)), expected[output["name"]])
    body["outputs"] = [{"name": "product"}]
    selected = served.predict("pair", json.dumps(body).encode()).json()
    assert [output["name"] for output in selected["outputs"]] == ["product"]


def test_concurrent_requests_come_back_to_their_senders(served: Served) -> None:
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((1 + index % 3, 4)).astype(np.float32) for index in range(24)]
    bodies = [json.dumps(array.tolist()).encode() for array in inputs]
    bodies[5] = b"[1, 2, 3]"  # one bad request must not sink the batch it lands in
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda body: served.predict("onnx", body), bodies))
    for index, (array, response) in enumerate(zip(inputs, responses, strict=True)):
        if index == 5:
            assert response.status_code == 400
            continue
        assert response.status_code == 200, response.text
        assert np.allclose(response.json(), served.references["onnx"](array), atol=1e-6)


def named(**tensors: tuple[str, np.ndarray]) -> bytes:
    inputs = [
        {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.tolist()}
        for name, (datatype, array) in tensors.items()
    ]
    return json.dumps({"inputs": inputs}).encode()


BAD_INPUTS = {
    "wrong shape": ("onnx", b"[1, 2, 3]", JSON, 'input "x": expected shape (N, 4), got (3,)'),
    "wrong rank for TF": (
        "tensorflow",
        b"[[1, 2, 3]]",
        JSON,
        'input "x": expected shape (N, 4), got (1, 3)',
    ),
    "wrong dtype": (
        "pair",
        named(a=("FP32", X), b=("FP32", X)),
        JSON,
        'input "b": expected int64 values, got float32',
    ),
    "data not of its datatype": (
        "pair",
        named(a=("FP32", X), b=("INT64", X)),
        JSON,
        'input "b": datatype INT64, but the data are float64',
    ),
    "missing input": ("pair", named(a=("FP32", X)), JSON, 'missing input "b"'),
    "unnamed input for two": ("pair", b"[[1, 2, 3, 4]]", JSON, "the model takes 2 inputs (a, b)"),
    "unparsable JSON": ("onnx", b"[[1, 2", JSON, "not valid JSON"),
    "not numbers": ("onnx", b'[["a", "b", "c", "d"]]', JSON, "non-numeric values"),
    "ragged rows": ("onnx", b"[[1, 2, 3, 4], [1]]", JSON, "rows of different lengths"),
    "bad npy": ("onnx", b"\x93NUMPY\x01\x00garbage", NPY, "not a valid .npy file"),
    "pickled npy": (
        "onnx",
        npy_bytes(np.array([{"x": 1}], dtype=object), allow_pickle=True),
        NPY,
        "not a valid .npy file",
    ),
    "empty body": ("onnx", b"", None, "empty request"),
    "torch shape mismatch": (
        "torchscript",
        b"[[1.0, 2.0, 3.0]]",
        JSON,
        "the model rejected the input (x: shape (1, 3) float32)",
    ),
}


@pytest.mark.parametrize(
    ("model", "body", "content_type", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys()
)
def test_bad_input_is_400_naming_the_problem(
    served: Served, model: str, body: bytes, content_type: str | None, message: str
) -> None:
    response = served.predict(model, body, content_type)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["type"] == "BadInputError"
    assert message in answer["message"]


def test_eager_refuses_a_state_dict_that_would_run_code(served: Served, tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    weights = tmp_path / "weights.pth"
    save_malicious_state_dict(weights, marker)
    url = archive(
        served.store, "malicious", serialized_file=str(weights), model_file=str(MODEL_FILE)
    )
    response = register(served.server, url)
    assert response.status_code == 500
    message = response.json()["message"]
    assert "ModelLoadError: cannot load weights.pth with eager PyTorch" in message
    assert "refused to unpickle" in message
    assert "weights_only=True" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("files", "manifest", "backend"),
    [
        (["m.pt"], {"serializedFile": "m.pt"}, "torchscript"),
        (["m.pth"], {"serializedFile": "m.pth"}, "torchscript"),
        (["m.pth", "net.py"], {"serializedFile": "m.pth", "modelFile": "net.py"}, "eager"),
        (["m.onnx", "net.py"], {"serializedFile": "m.onnx", "modelFile": "net.py"}, "onnx"),
        (["m.plan"], {"serializedFile": "m.plan"}, "tensorrt"),
        (["m.engine"], {"serializedFile": "m.engine"}, "tensorrt"),
        (["saved_model.pb"], {}, "tensorflow"),
        (["saved_model.pb"], {"serializedFile": "saved_model.pb"}, "tensorflow"),
        (["export/saved_model.pb"], {"serializedFile": "export"}, "tensorflow"),
    ],
)
def test_backend_follows_the_serialized_file(
    tmp_path: Path, files: list[str], manifest: dict[str, str], backend: str
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert detect_backend(tmp_path, {"model": manifest}) == backend


def test_unknown_file_names_what_would_load(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"cannot load model\.bin .*expected a \.pt/\.pth"):
        detect_backend(tmp_path, {"model": {"serializedFile": "model.bin"}})


def test_missing_framework_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        ModelLoadError, match=r"onnxruntime is not installed: pip install modelserve\[onnx\]"
    ):
        load_model(tmp_path, {"model": {"serializedFile": "m.onnx"}}, "cpu")


def test_a_batch_is_one_model_call_split_back_by_rows() -> None:
    calls: list[dict[str, np.ndarray]] = []

    def double(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(inputs)
        return {"y": inputs["x"] * 2}

    requests = {0: {"x": X}, 1: {"x": X[:1]}, 3: {"x": X + 1}}
    outcomes = run_requests(double, requests, concatenate=True)
    assert len(calls) == 1 and calls[0]["x"].shape == (5, 4)
    for index, tensors in requests.items():
        assert np.array_equal(outcomes[index]["y"], tensors["x"] * 2)
    calls.clear()
    requests[4] = {"x": np.ones((1, 5), dtype=np.float32)}  # cannot be stacked with the rest
    run_requests(double, requests, concatenate=True)
    assert len(calls) == len(requests)
