"""The ``tensor`` handler's protocol codecs: KServe v2 (Open Inference Protocol, with Triton's
binary tensor data) and TF Serving's predict, chosen by the ``modelserve-protocol`` header.

The frontend's protocol routes send that header with the client's body; these tests send it
themselves to ``/predictions/{model}`` on a real server serving archives built with the real
archiver, and compare the answers with the frameworks called in-process. Also: the codecs as
functions, the worker's READY tensor metadata, and the data plane's model metadata end to end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from framework_models import SAMPLE as X
from framework_models import save_onnx_linear, save_onnx_pair, save_onnx_strings, tensor_archive
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_handlers.backends import load_model
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.tensor import TensorHandler
from modelserve_handlers.tensor_io.datatypes import V2_DATATYPES, tensor_metadata
from modelserve_handlers.tensor_io.open_inference import (
    InferRequest,
    RequestedOutput,
    decode_infer_request,
    encode_infer_response,
)
from modelserve_handlers.tensor_io.tf_serving import (
    PredictRequest,
    decode_predict_request,
    encode_predict_response,
)
from v2_fixtures import TORCHSCRIPT_WARNINGS, B, serving, tensor_models
from v2_fixtures import Served as ServedModels

from modelserve import wire
from modelserve.config import Settings
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine, RegisterOptions
from modelserve.engine.errors import (
    InvalidModelException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)
from modelserve.server import build_server_metrics
from modelserve.worker.context import Context

pytestmark = TORCHSCRIPT_WARNINGS

PROTOCOL = "modelserve-protocol"
LENGTH = "inference-header-content-length"
PAIR_METADATA = {
    "inputs": [
        {"name": "a", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "b", "datatype": "INT64", "shape": [-1, 4]},
    ],
    "outputs": [
        {"name": "sum", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "product", "datatype": "FP32", "shape": [-1, 4]},
    ],
}


def archive(store: Path, name: str, **files: Any) -> str:
    build_archive(
        ArchiveOptions(
            model_name=name, version="1.0", handler="tensor", export_path=store, force=True, **files
        )
    )
    return f"{name}.mar"


class Served(ServedModels):
    def post(
        self, model: str, body: bytes | dict, protocol: str | None, **headers: str
    ) -> httpx.Response:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("content-type", "application/json")
        if protocol is not None:
            headers[PROTOCOL] = protocol
        return httpx.post(
            f"{self.server.inference}/predictions/{model}", content=body, headers=headers
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    models = tensor_models(tmp_path_factory, "protocol")
    tensor_archive(models.store, "strings", save_onnx_strings(models.build))
    workers = {"pair.mar": 1, "torchscript.mar": 1, "strings.mar": 1}
    batching = {"batch_size": 8, "max_batch_delay": 50}
    with serving(tmp_path_factory, models, workers, register=batching, kind=Served) as served:
        yield served


def v2_input(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.tolist()}


def binary_body(header: dict[str, Any], buffers: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """Triton's layout: the JSON, then each binary input's bytes; the JSON length in a header."""
    json_part = json.dumps(header).encode()
    headers = {LENGTH: str(len(json_part)), "content-type": "application/octet-stream"}
    return json_part + b"".join(buffers), headers


def split_binary(response: httpx.Response) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON part of a binary response, and each binary output's bytes by name."""
    length = int(response.headers[LENGTH])
    header = json.loads(response.content[:length])
    buffers, offset = {}, length
    for output in header["outputs"]:
        if "parameters" in output:
            size = output["parameters"]["binary_data_size"]
            buffers[output["name"]] = response.content[offset : offset + size]
            offset += size
    assert offset == len(response.content)
    return header, buffers


def length_prefixed(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


# ----- v2 through the server


def test_v2_json_two_inputs_match_onnx_runtime(served: Served) -> None:
    body = {"id": "req-1", "inputs": [v2_input("a", X, "FP32"), v2_input("b", B, "INT64")]}
    response = served.post("pair", body, "v2")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("pair", "1.0", "req-1")
    expected = served.references["pair"](a=X, b=B)
    assert [output["name"] for output in answer["outputs"]] == ["sum", "product"]
    for output in answer["outputs"]:
        assert (output["datatype"], output["shape"]) == ("FP32", [2, 4])
        assert np.allclose(np.reshape(output["data"], (2, 4)), expected[output["name"]])


def test_v2_torchscript_outputs_get_triton_names(served: Served) -> None:
    expected = served.references["torchscript"](X)
    # The forward() argument's own name, and Triton's positional name, both reach the model.
    for name in ("x", "input__0"):
        response = served.post("torchscript", {"inputs": [v2_input(name, X, "FP32")]}, "v2")
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == (
            "output__0",
            "FP32",
            [2, 3],
        )
        assert np.allclose(np.reshape(output["data"], (2, 3)), expected, atol=1e-6)
    # A typed request keeps its datatype: FP64 reaches the float32 module, which refuses it.
    response = served.post("torchscript", {"inputs": [v2_input("x", X, "FP64")]}, "v2")
    assert response.status_code == 400
    assert "the model rejected the input" in response.json()["error"]


def test_v2_binary_inputs_and_outputs(served: Served) -> None:
    header = {
        "inputs": [
            {
                "name": "a",
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 32},
            },
            {
                "name": "b",
                "shape": [2, 4],
                "datatype": "INT64",
                "parameters": {"binary_data_size": 64},
            },
        ],
        "parameters": {"binary_data_output": True},
    }
    body, headers = binary_body(header, [X.astype("<f4").tobytes(), B.astype("<i8").tobytes()])
    response = served.post("pair", body, "v2", **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    answer, buffers = split_binary(response)
    expected = served.references["pair"](a=X, b=B)
    for output in answer["outputs"]:
        assert "data" not in output and output["parameters"] == {"binary_data_size": 32}
        values = np.frombuffer(buffers[output["name"]], dtype="<f4").reshape(output["shape"])
        assert np.allclose(values, expected[output["name"]])


def test_v2_mixed_binary_and_json_with_requested_outputs(served: Served) -> None:
    header = {
        "inputs": [
            {
                "name": "a",
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 32},
            },
            v2_input("b", B, "INT64"),
        ],
        "outputs": [{"name": "product", "parameters": {"binary_data": True}}, {"name": "sum"}],
    }
    body, headers = binary_body(header, [X.astype("<f4").tobytes()])
    response = served.post("pair", body, "v2", **headers)
    assert response.status_code == 200, response.text
    answer, buffers = split_binary(response)
    expected = served.references["pair"](a=X, b=B)
    assert [output["name"] for output in answer["outputs"]] == ["product", "sum"]
    product = np.frombuffer(buffers["product"], dtype="<f4").reshape(2, 4)
    assert np.allclose(product, expected["product"])
    assert np.allclose(np.reshape(answer["outputs"][1]["data"], (2, 4)), expected["sum"])
    # Only some outputs, all in JSON.
    body = {"inputs": [v2_input("a", X, "FP32"), v2_input("b", B, "INT64")]}
    body["outputs"] = [{"name": "sum"}]
    response = served.post("pair", body, "v2")
    assert response.headers["content-type"] == "application/json"
    assert [output["name"] for output in response.json()["outputs"]] == ["sum"]


def test_v2_bytes_in_json_and_binary(served: Served) -> None:
    words = ["héllo", "", "tensor"]
    body = {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": words}]}
    response = served.post("strings", body, "v2")
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output == {"name": "echo", "datatype": "BYTES", "shape": [3], "data": words}
    encoded = [word.encode() for word in words]
    data = length_prefixed(encoded)
    header = {
        "inputs": [
            {
                "name": "text",
                "shape": [3],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(data)},
            }
        ],
        "outputs": [{"name": "echo", "parameters": {"binary_data": True}}],
    }
    raw, headers = binary_body(header, [data])
    response = served.post("strings", raw, "v2", **headers)
    assert response.status_code == 200, response.text
    _, buffers = split_binary(response)
    assert buffers["echo"] == data


def pair_body(**changes: Any) -> dict[str, Any]:
    body = {"inputs": [v2_input("a", X, "FP32"), v2_input("b", B, "INT64")]}
    body.update(changes)
    return body


V2_BAD_REQUESTS = {
    "bad JSON": (b'{"inputs": [', {}, "the request is not valid JSON"),
    "not an object": (b"[1, 2]", {}, "an inference request must be a JSON object"),
    "no inputs": (pair_body(inputs=[]), {}, '"inputs" must be a non-empty list'),
    "wrong datatype for the model": (
        pair_body(inputs=[v2_input("a", X, "FP32"), v2_input("b", X, "FP32")]),
        {},
        'input "b": expected int64 values, got float32',
    ),
    "data not of its datatype": (
        pair_body(inputs=[v2_input("a", X, "FP32"), v2_input("b", X, "INT64")]),
        {},
        'input "b": datatype INT64, but the data are float64',
    ),
    "unsupported datatype": (
        pair_body(inputs=[{**v2_input("a", X, "FP32"), "datatype": "FP8"}]),
        {},
        "input \"a\": unsupported datatype 'FP8'",
    ),
    "size mismatch": (
        pair_body(
            inputs=[{**v2_input("a", X, "FP32"), "shape": [3, 4]}, v2_input("b", B, "INT64")]
        ),
        {},
        'input "a": shape [3, 4] needs 12 values, got 8',
    ),
    "shape the model refuses": (
        pair_body(
            inputs=[{**v2_input("a", X, "FP32"), "shape": [4, 2]}, v2_input("b", B, "INT64")]
        ),
        {},
        'input "a": expected shape (N, 4), got (4, 2)',
    ),
    "unknown input": (
        pair_body(inputs=[v2_input("a", X, "FP32"), v2_input("c", B, "INT64")]),
        {},
        'unknown input "c" (the model takes a, b)',
    ),
    "unknown output": (
        pair_body(outputs=[{"name": "difference"}]),
        {},
        'unknown output "difference" (the model has sum, product)',
    ),
    "binary size mismatch": (
        binary_body(
            pair_body(
                inputs=[
                    {
                        "name": "a",
                        "shape": [2, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 16},
                    },
                    v2_input("b", B, "INT64"),
                ]
            ),
            [X.astype("<f4").tobytes()[:16]],
        ),
        None,
        'input "a": 8 FP32 values take 32 bytes, binary_data_size is 16',
    ),
    "binary data missing": (
        binary_body(
            pair_body(
                inputs=[
                    {
                        "name": "a",
                        "shape": [2, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 32},
                    },
                    v2_input("b", B, "INT64"),
                ]
            ),
            [b"\x00" * 8],
        ),
        None,
        'input "a": binary_data_size is 32 but only 8 bytes of binary data remain',
    ),
    "binary data left over": (
        binary_body(pair_body(), [b"\x00" * 4]),
        None,
        "4 bytes of binary data follow the inputs' binary_data_size",
    ),
}


@pytest.mark.parametrize(
    ("body", "headers", "message"), V2_BAD_REQUESTS.values(), ids=V2_BAD_REQUESTS.keys()
)
def test_v2_bad_request_is_400_with_an_error(
    served: Served, body: Any, headers: dict[str, str] | None, message: str
) -> None:
    if headers is None:  # a (body, headers) pair from binary_body
        body, headers = body
    response = served.post("pair", body, "v2", **headers)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert list(answer) == ["error"]
    assert message in answer["error"]


def test_a_bad_request_does_not_sink_its_batch(served: Served) -> None:
    good = pair_body()
    bad = pair_body(inputs=[v2_input("a", X, "FP32"), v2_input("b", X, "FP32")])
    bodies = [good, bad] * 6
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda body: served.post("pair", body, "v2"), bodies))
    expected = served.references["pair"](a=X, b=B)
    for body, response in zip(bodies, responses, strict=True):
        if body is bad:
            assert response.status_code == 400 and "error" in response.json()
            continue
        assert response.status_code == 200, response.text
        (total, _) = response.json()["outputs"]
        assert np.allclose(np.reshape(total["data"], (2, 4)), expected["sum"])


def test_unknown_protocol_is_400(served: Served) -> None:
    response = served.post("pair", pair_body(), "grpc")
    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown modelserve-protocol 'grpc' (expected v2 or tfserving)"
    }


def test_without_the_header_the_named_format_is_unchanged(served: Served) -> None:
    response = served.post("torchscript", {"inputs": [v2_input("x", X, "FP32")]}, None)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "model_version" not in answer and answer["outputs"][0]["name"] == "output_0"


# ----- TF Serving through the server


def test_tf_rows_and_columns_on_one_input(served: Served) -> None:
    expected = served.references["torchscript"](X)
    rows = served.post("torchscript", {"instances": X.tolist()}, "tfserving")
    assert rows.status_code == 200, rows.text
    assert np.allclose(rows.json()["predictions"], expected, atol=1e-6)
    named_rows = [{"x": row} for row in X.tolist()]
    rows = served.post("torchscript", {"instances": named_rows}, "tfserving")
    assert np.allclose(rows.json()["predictions"], expected, atol=1e-6)
    columns = served.post("torchscript", {"inputs": X.tolist()}, "tfserving")
    assert columns.status_code == 200, columns.text
    assert np.allclose(columns.json()["outputs"], expected, atol=1e-6)


def test_tf_rows_and_columns_on_two_inputs(served: Served) -> None:
    expected = served.references["pair"](a=X, b=B)
    instances = [{"a": a, "b": b} for a, b in zip(X.tolist(), B.tolist(), strict=True)]
    body = {"signature_name": "serving_default", "instances": instances}
    rows = served.post("pair", body, "tfserving")
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert [sorted(row) for row in predictions] == [["product", "sum"]] * 2
    for name in ("sum", "product"):
        assert np.allclose([row[name] for row in predictions], expected[name])
    columns = served.post("pair", {"inputs": {"a": X.tolist(), "b": B.tolist()}}, "tfserving")
    assert columns.status_code == 200, columns.text
    outputs = columns.json()["outputs"]
    assert np.allclose(outputs["sum"], expected["sum"])
    assert np.allclose(outputs["product"], expected["product"])


TF_BAD_REQUESTS = {
    "unknown signature": (
        {"signature_name": "classify", "instances": X.tolist()},
        "unknown signature_name 'classify' (the model serves serving_default)",
    ),
    "neither format": ({"rows": [1]}, 'exactly one of "instances" and "inputs"'),
    "both formats": ({"instances": [1], "inputs": [1]}, 'exactly one of "instances" and "inputs"'),
    "mixed rows": ({"instances": [{"a": [1.0]}, [1.0]]}, '"instances" mixes objects'),
    "rows with other inputs": (
        {"instances": [{"a": [1.0] * 4, "b": [1] * 4}, {"a": [1.0] * 4}]},
        "instance 1 has inputs ['a'], instance 0 has ['a', 'b']",
    ),
    "wrong dtype": (
        {"inputs": {"a": X.tolist(), "b": X.tolist()}},
        'input "b": expected int64 values, got float64',
    ),
    "not JSON": (b"{", "the request is not valid JSON"),
}


@pytest.mark.parametrize(("body", "message"), TF_BAD_REQUESTS.values(), ids=TF_BAD_REQUESTS.keys())
def test_tf_bad_request_is_400_with_an_error(served: Served, body: Any, message: str) -> None:
    response = served.post("pair", body, "tfserving")
    assert response.status_code == 400, response.text
    answer = response.json()
    assert list(answer) == ["error"] and message in answer["error"]


# ----- the codecs as functions


@pytest.mark.parametrize("datatype", [*V2_DATATYPES, "BYTES"])
def test_every_datatype_survives_binary_and_json(datatype: str) -> None:
    if datatype == "BYTES":
        array = np.empty(4, dtype=object)
        array[:] = [b"a", b"", b"\x00\xff", b"text"]
        raw = length_prefixed(list(array))
        data = None
    else:
        array = (np.arange(4) % 2 if datatype == "BOOL" else np.arange(4)).astype(
            V2_DATATYPES[datatype]
        )
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        data = array.tolist()
    header = {"inputs": [{"name": "t", "shape": [2, 2], "datatype": datatype}]}
    header["inputs"][0]["parameters"] = {"binary_data_size": len(raw)}
    json_part = json.dumps(header).encode()
    request = decode_infer_request(json_part + raw, str(len(json_part)))
    decoded = request.tensors["t"]
    assert decoded.shape == (2, 2) and decoded.dtype == array.dtype
    assert decoded.ravel().tolist() == array.tolist()
    binary = InferRequest({}, binary_output=True)
    response = encode_infer_response(binary, {"t": decoded}, "m", "1")
    length = response.json_length
    assert length is not None and response.body[length:] == raw
    assert json.loads(response.body[:length])["outputs"][0]["datatype"] == datatype
    if data is not None:
        as_json = json.loads(encode_infer_response(InferRequest({}), {"t": decoded}, "m", "1").body)
        assert as_json["outputs"][0]["data"] == data


def test_infer_response_shape_and_per_output_binary() -> None:
    outputs = {"y": np.ones((1, 2), dtype=np.float16), "z": np.array([7], dtype=np.uint64)}
    request = InferRequest({}, request_id="r", outputs=[RequestedOutput("z", binary=True)])
    response = encode_infer_response(request, outputs, "m", None)
    assert response.content_type == "application/octet-stream"
    header = json.loads(response.body[: response.json_length])
    assert header == {
        "model_name": "m",
        "id": "r",
        "outputs": [
            {"name": "z", "datatype": "UINT64", "shape": [1], "parameters": {"binary_data_size": 8}}
        ],
    }
    whole = encode_infer_response(InferRequest({}), outputs, "m", "2")
    assert json.loads(whole.body)["outputs"][0] == {
        "name": "y",
        "datatype": "FP16",
        "shape": [1, 2],
        "data": [1.0, 1.0],
    }


def test_binary_header_length_must_fit_the_body() -> None:
    with pytest.raises(BadInputError, match="inference-header-content-length must be"):
        decode_infer_request(b'{"inputs": []}', "99")
    with pytest.raises(BadInputError, match="BYTES element runs past"):
        header = b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES",'
        header += b' "parameters": {"binary_data_size": 6}}]}'
        decode_infer_request(header + struct.pack("<I", 9) + b"ab", str(len(header)))


def test_tf_strings_and_b64() -> None:
    body = {
        "instances": [
            {"s": "abc", "n": 1},
            {"s": {"b64": base64.b64encode(b"\xff").decode()}, "n": 2},
        ]
    }
    request = decode_predict_request(json.dumps(body).encode(), ["serving_default"])
    assert request.tensors["s"].tolist() == [b"abc", b"\xff"]
    assert request.tensors["n"].tolist() == [1, 2]
    outputs = {"s": request.tensors["s"], "n": request.tensors["n"]}
    assert encode_predict_response(request, outputs) == {
        "predictions": [{"s": "abc", "n": 1}, {"s": {"b64": "/w=="}, "n": 2}]
    }
    columnar = PredictRequest({None: np.zeros(2)}, columnar=True)
    assert encode_predict_response(columnar, {"y": np.float32(3.0) * np.ones(())}) == {
        "outputs": 3.0
    }


# ----- tensor metadata


def test_handler_describes_its_model(served: Served) -> None:
    pair = load_model(served.build, {"model": {"serializedFile": "pair.onnx"}}, "cpu")
    assert tensor_metadata(pair) == PAIR_METADATA
    script = load_model(served.build, {"model": {"serializedFile": "tiny.pt"}}, "cpu")
    assert tensor_metadata(script) == {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1]}],
    }


def test_ready_carries_tensor_metadata() -> None:
    header = wire.decode_header(wire.encode_ready("w", 1, 2.0, PAIR_METADATA)[0])
    assert header["tensors"] == PAIR_METADATA
    assert "tensors" not in wire.decode_header(wire.encode_ready("w", 1, 2.0)[0])


def test_mixed_batch_in_process(served: Served) -> None:
    """Two requests of one batch, one bad: each gets its own answer and status."""
    manifest = {"model": {"serializedFile": "pair.onnx", "modelVersion": "3"}}
    context = Context("pair", str(served.build), manifest, 2, None, "test")
    handler = TensorHandler()
    handler.initialize(context)
    bad = pair_body(inputs=[v2_input("a", X, "FP32")])
    context.start_batch(["1", "2"], [{PROTOCOL: "v2"}, {PROTOCOL: "v2"}])
    good_body, bad_body = handler.handle(
        [{"body": json.dumps(pair_body()).encode()}, {"body": bad}], context
    )
    assert context.get_response_status(0) == (200, "")
    assert json.loads(good_body)["model_version"] == "3"
    assert context.get_response_status(1) == (400, "Bad Request")
    assert bad_body == {"error": 'missing input "b" (the model takes a, b)'}


def _engine_metadata(store: Path, runtime: Path) -> dict[str, Any]:
    """Register in an in-process engine (real workers) and read what its data plane learned."""

    async def scenario() -> dict[str, Any]:
        settings = Settings(model_store=store, runtime_dir=runtime, enable_snapshots=False)
        engine = Engine(settings, build_server_metrics(settings), "codecs")
        await engine.start()
        try:
            plane = DataPlane(engine)
            for url in ("pair.mar", "declared.mar"):
                await engine.register(RegisterOptions(url=url, initial_workers=1))
            found = {
                name: plane.model_metadata(name, version)
                for name, version in (("pair", None), ("declared", "1.0"))
            }
            with pytest.raises(ModelNotFoundException):
                plane.model_metadata("absent", None)
            with pytest.raises(ModelVersionNotFoundException):
                plane.model_metadata("pair", "9")
            with pytest.raises(InvalidModelException, match=r"inputs\[0\]: datatype 'FLOAT'"):
                await engine.register(RegisterOptions(url="invalid.mar"))
            return found
        finally:
            await engine.stop()

    return asyncio.run(scenario())


def test_engine_learns_tensor_metadata_from_ready_and_yaml(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    pair_file, _ = save_onnx_pair(tmp_path)
    linear_file, _ = save_onnx_linear(tmp_path)
    archive(store, "pair", serialized_file=str(pair_file))
    declared_outputs = [{"name": "y", "datatype": "FP32", "shape": [8, 3]}]
    config = tmp_path / "declared.yaml"
    config.write_text(json.dumps({"outputs": declared_outputs}))
    archive(store, "declared", serialized_file=str(linear_file), config_file=str(config))
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(json.dumps({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [4]}]}))
    archive(store, "invalid", serialized_file=str(linear_file), config_file=str(invalid))
    found = _engine_metadata(store, tmp_path / "runtime")
    pair, declared = found["pair"], found["declared"]
    assert {"inputs": pair.inputs, "outputs": pair.outputs} == PAIR_METADATA
    assert pair.platform == declared.platform == "onnxruntime_onnx"  # the worker's READY
    assert declared.inputs == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]  # reported
    assert declared.outputs == declared_outputs  # declared: wins over the worker's


def test_triton_client_bodies_round_trip(served: Served) -> None:
    """Triton's own client builds the binary request and parses the binary response."""
    import tritonclient.http as triton

    a = triton.InferInput("a", list(X.shape), "FP32")
    a.set_data_from_numpy(X, binary_data=True)
    b = triton.InferInput("b", list(B.shape), "INT64")
    b.set_data_from_numpy(B, binary_data=False)
    outputs = [triton.InferRequestedOutput("product", binary_data=True)]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [a, b], outputs, request_id="t-1"
    )
    headers = {"content-type": "application/octet-stream"}
    if json_size is not None:
        headers[LENGTH] = str(json_size)
    response = served.post("pair", body, "v2", **headers)
    assert response.status_code == 200, response.text
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[LENGTH])
    )
    assert result.get_response()["id"] == "t-1"
    assert np.allclose(result.as_numpy("product"), served.references["pair"](a=X, b=B)["product"])

    text = triton.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"\xffraw", "ünï".encode()], dtype=object))
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [text], [triton.InferRequestedOutput("echo", binary_data=True)]
    )
    response = served.post("strings", body, "v2", **{LENGTH: str(json_size)})
    # ONNX Runtime strings are text: non-UTF-8 bytes are refused, by name.
    assert response.status_code == 400
    assert response.json() == {"error": 'input "text": ONNX string tensors take UTF-8 text'}
    text.set_data_from_numpy(np.array([b"raw", "ünï".encode()], dtype=object))
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [text], [triton.InferRequestedOutput("echo", binary_data=True)]
    )
    response = served.post("strings", body, "v2", **{LENGTH: str(json_size)})
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[LENGTH])
    )
    assert result.as_numpy("echo").tolist() == [b"raw", "ünï".encode()]
