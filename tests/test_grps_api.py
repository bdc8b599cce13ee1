"""grps's HTTP and gRPC APIs on a server with three models (issue 20): every DataType through
its flat field and back, proto3 JSON's other spellings, str_data and bin_data, the model a
request names (``NAME-VERSION``), metadata, health, and every bad input answered with grps's
``status`` (the HTTP status in ``code``, what was wrong in ``msg``, ``FAILURE``) while the
server goes on serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import yaml
from framework_models import tensor_archive
from grps_support import save_summary_torchscript, torch_answer
from support import RunningServer, build_test_archive, start_server

from modelserve.grps.proto import grps_pb2 as pb
from modelserve.grps.proto import grps_pb2_grpc as pb_grpc

# Two elements of each DataType, its extremes where it has them (FP16: exact halves).
VALUES: dict[str, list[Any]] = {
    "DT_UINT8": [0, 255],
    "DT_INT8": [-128, 127],
    "DT_INT16": [-32768, 32767],
    "DT_INT32": [-(2**31), 2**31 - 1],
    "DT_INT64": [-(2**63), 2**63 - 1],
    "DT_FLOAT16": [0.5, -1.25],
    "DT_FLOAT32": [0.1, -2.5],
    "DT_FLOAT64": [0.1, 1e300],
    "DT_STRING": ["a", "bé"],
}
X = [[0.5, -1.0, 2.0, 4.0]]
SUCCESS = {"code": 200, "msg": "OK", "status": "SUCCESS"}


def _field(dtype: str) -> str:
    return "flat_" + dtype.removeprefix("DT_").lower()


def _tensors() -> list[dict[str, Any]]:
    return [
        {"name": f"t{index}", "dtype": dtype, "shape": [2], _field(dtype): values}
        for index, (dtype, values) in enumerate(VALUES.items())
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """summary (a TorchScript model, the tensor handler), tensors (each input answered as
    an output) and echo (text upper-cased, bytes reversed)."""
    store = tmp_path_factory.mktemp("store")
    model, _ = save_summary_torchscript(tmp_path_factory.mktemp("summary"))
    tensor_archive(store, "summary", model)
    build_test_archive(store, "tensors", "tensor_echo.py")
    build_test_archive(store, "echo", "text_bytes_echo.py")
    models = ["summary=summary.mar", "tensors=tensors.mar", "echo=echo.mar"]
    server = start_server(tmp_path_factory.mktemp("server"), store, models)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub(served: RunningServer) -> Iterator[pb_grpc.GrpsServiceStub]:
    with grpc.insecure_channel(served.grpc_inference) as channel:
        yield pb_grpc.GrpsServiceStub(channel)


@pytest.fixture(scope="module")
def summary_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return save_summary_torchscript(tmp_path_factory.mktemp("reference"))[1]


def predict(
    served: RunningServer, body: Any, model: str | None = None, **params: str
) -> httpx.Response:
    if model is not None:
        params["model"] = model
    url = f"{served.inference}/grps/v1/infer/predict"
    return httpx.post(url, json=body, params=params, timeout=120)


def test_every_datatype_goes_through_its_flat_field_and_back_over_http(
    served: RunningServer,
) -> None:
    answer = predict(served, {"gtensors": {"tensors": _tensors()}}, "tensors")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": SUCCESS, "gtensors": {"tensors": _tensors()}}


def test_every_datatype_goes_through_its_flat_field_and_back_over_grpc(
    stub: pb_grpc.GrpsServiceStub,
) -> None:
    request = pb.GrpsMessage(model="tensors-1.0")
    request.gtensors.tensors.extend(pb.GenericTensor(**tensor) for tensor in _tensors())
    answer = stub.Predict(request)
    assert (answer.status.code, answer.status.msg, answer.status.status) == (200, "OK", 1)
    for tensor, sent in zip(answer.gtensors.tensors, _tensors(), strict=True):
        assert (tensor.name, pb.DataType.Name(tensor.dtype)) == (sent["name"], sent["dtype"])
        got, want = list(getattr(tensor, _field(sent["dtype"]))), sent[_field(sent["dtype"])]
        if sent["dtype"] == "DT_FLOAT32":
            want = np.float32(want).tolist()  # what a float field holds
        assert list(tensor.shape) == [2] and got == want


def test_proto3_json_spellings_are_read(served: RunningServer) -> None:
    tensors = [
        {"name": "n", "dtype": 5, "shape": ["2"], "flatInt64": ["12", -3]},
        {"name": "f", "dtype": "DT_FLOAT64", "shape": [2], "flat_float64": ["1.5", 2]},
    ]
    answer = predict(served, {"gtensors": {"tensors": tensors}}, "tensors")
    assert answer.status_code == 200, answer.text
    (integers, floats) = answer.json()["gtensors"]["tensors"]
    assert (integers["dtype"], integers["flat_int64"]) == ("DT_INT64", [12, -3])
    assert floats["flat_float64"] == [1.5, 2.0]


def test_unnamed_tensors_are_the_models_inputs_and_the_body_names_the_model(
    served: RunningServer, summary_module: Any
) -> None:
    tensor = {"dtype": "DT_FLOAT32", "shape": [1, 4], "flat_float32": X[0]}
    expected = torch_answer(summary_module, np.array(X, dtype=np.float32))
    for body, query in (
        ({"gtensors": {"tensors": [tensor]}}, "summary-1.0"),
        ({"gtensors": {"tensors": [tensor]}}, "summary"),
        ({"model": "summary", "ndarray": X}, "nope"),  # the body's model wins
    ):
        answer = predict(served, body, query)
        assert answer.status_code == 200, answer.text
        (output,) = answer.json()["gtensors"]["tensors"]
        assert output["shape"] == [1, 2]
        assert np.allclose(output["flat_float32"], expected.ravel(), atol=1e-6)
    nested = predict(served, {"ndarray": X}, "summary", **{"return-ndarray": "true"})
    assert nested.json()["status"] == SUCCESS
    assert np.allclose(nested.json()["ndarray"], expected, atol=1e-6)


def test_str_data_and_bin_data_reach_the_handler_and_come_back(
    served: RunningServer, stub: pb_grpc.GrpsServiceStub
) -> None:
    text = predict(served, {"str_data": "hello grps"}, "echo")
    assert text.json() == {"status": SUCCESS, "str_data": "HELLO GRPS"}
    raw = httpx.post(
        f"{served.inference}/grps/v1/infer/predict?model=echo",
        content=b"\x00\x01\xff",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == b"\xff\x01\x00"
    assert stub.Predict(pb.GrpsMessage(model="echo", str_data="hi")).str_data == "HI"
    assert stub.Predict(pb.GrpsMessage(model="echo", bin_data=b"ab\x00")).bin_data == b"\x00ba"


def test_metadata_describes_the_server_and_each_model(
    served: RunningServer, stub: pb_grpc.GrpsServiceStub
) -> None:
    server = httpx.get(f"{served.inference}/grps/v1/metadata/server").json()
    assert server["status"] == SUCCESS
    document = yaml.safe_load(server["str_data"])
    assert document["server"]["name"] == "modelserve"
    assert [model["name"] for model in document["models"]] == ["echo", "summary", "tensors"]
    asked = httpx.post(f"{served.inference}/grps/v1/metadata/model", json={"str_data": "summary"})
    model = yaml.safe_load(asked.json()["str_data"])
    assert (model["name"], model["version"], model["platform"]) == (
        "summary",
        "1.0",
        "pytorch_libtorch",
    )
    assert model["state"] == "AVAILABLE" and model["inputs"][0]["name"] == "x"
    assert yaml.safe_load(stub.ServerMetadata(pb.GrpsMessage()).str_data) == document
    by_grpc = stub.ModelMetadata(pb.GrpsMessage(str_data="summary-1.0"))
    assert yaml.safe_load(by_grpc.str_data) == model
    for method in ("live", "ready"):
        assert httpx.get(f"{served.inference}/grps/v1/health/{method}").json() == {
            "status": SUCCESS
        }
    assert stub.CheckLiveness(pb.GrpsMessage()).status.code == 200


def _tensor(**fields: Any) -> dict[str, Any]:
    return {"gtensors": {"tensors": [{"dtype": "DT_FLOAT32", "shape": [1, 4], **fields}]}}


UNNAMED = {"dtype": "DT_FLOAT32", "shape": [1, 4], "flat_float32": X[0]}
# (JSON body, model, status, what the message says); bodies given as bytes are sent as they are.
HTTP_ERRORS: list[tuple[Any, str | None, int, str]] = [
    (_tensor(dtype="DT_FLOAT", flat_float32=X[0]), "summary", 400, "dtype DT_FLOAT is not one of"),
    (
        _tensor(flat_float64=X[0]),
        "summary",
        400,
        "flat_float64 holds values, but a DT_FLOAT32 tensor takes them in flat_float32",
    ),
    (
        _tensor(flat_float32=[1, 2, 3]),
        "summary",
        400,
        "shape [1, 4] holds 4 elements, but flat_float32 has 3",
    ),
    (_tensor(flat_double=X[0]), "summary", 400, 'unknown field "flat_double"'),
    (
        _tensor(flat_float32=[1, "x", 3, 4]),
        "summary",
        400,
        "flat_float32[1] = 'x' is not a DT_FLOAT32 value",
    ),
    (
        _tensor(dtype="DT_UINT8", flat_uint8=[256, 0, 0, 0]),
        "summary",
        400,
        "flat_uint8[0] = 256 is not a DT_UINT8 value",
    ),
    (_tensor(shape=[1, -4], flat_float32=X[0]), "summary", 400, "non-negative integers"),
    (b'{"gtensors": ', "summary", 400, "the request body is not JSON"),
    (b"[1, 2]", "summary", 400, "must be a JSON object"),
    ({"model": "summary"}, None, 400, "the request has no data"),
    ({"str_data": "a", "ndarray": [1]}, "summary", 400, "one data field only"),
    ({"bin_data": "AAE="}, "echo", 400, "bin_data goes as the body itself"),
    ({"gmap": {"s_s": {"a": "b"}}}, "echo", 400, "gmap is not served"),
    ({"ndarray": [[1, 2], [3]]}, "summary", 400, "differ in length"),
    ({"ndarray": X}, "nope", 404, "model 'nope' is not served (served: echo-1.0, summary-1.0"),
    ({"ndarray": X}, None, 400, "name one with model=NAME-VERSION"),
    (
        {"gtensors": {"tensors": [{"name": "x", **UNNAMED}, UNNAMED]}},
        "summary",
        400,
        "all have a name or all have none",
    ),
    ({"ndarray": [1.0, 2.0]}, "summary", 400, "the model rejected the input"),
]


@pytest.mark.parametrize(("body", "model", "status", "message"), HTTP_ERRORS)
def test_bad_http_requests_get_grps_errors(
    served: RunningServer, body: Any, model: str | None, status: int, message: str
) -> None:
    url = f"{served.inference}/grps/v1/infer/predict"
    params = {"model": model} if model else {}
    if isinstance(body, bytes):
        answer = httpx.post(url, content=body, params=params)
    else:
        answer = httpx.post(url, json=body, params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["status"]["code"] == status
    assert answer.json()["status"]["status"] == "FAILURE"
    assert message in answer.json()["status"]["msg"]
    assert predict(served, {"ndarray": X}, "summary").status_code == 200


@pytest.mark.parametrize(
    ("path", "query", "content_type", "status", "message"),
    [
        ("infer/predict", "model=summary", "text/csv", 400, "Content-Type text/csv is not served"),
        (
            "infer/predict",
            "model=tensors&return-ndarray=true",
            "application/json",
            500,
            "return-ndarray needs one float32 output",
        ),
        ("nope", "", "application/json", 404, "not found"),
    ],
)
def test_bad_paths_and_query_parameters_get_grps_errors(
    served: RunningServer, path: str, query: str, content_type: str, status: int, message: str
) -> None:
    body = b'{"gtensors": {"tensors": [{"name": "a", "dtype": "DT_INT32", "flat_int32": [1]}]}}'
    answer = httpx.post(
        f"{served.inference}/grps/v1/{path}?{query}",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["status"]["msg"]
    assert answer.json()["status"]["status"] == "FAILURE"


def test_bad_grpc_requests_get_grps_errors_in_an_ok_call(stub: pb_grpc.GrpsServiceStub) -> None:
    unset = pb.GrpsMessage(model="summary")
    unset.gtensors.tensors.add(shape=[1, 4], flat_float32=X[0])
    mismatched = pb.GrpsMessage(model="summary")
    mismatched.gtensors.tensors.add(dtype=pb.DT_FLOAT32, shape=[1, 4], flat_int32=[1, 2, 3, 4])
    for request, status, message in (
        (pb.GrpsMessage(model="nope", str_data="x"), 404, "model 'nope' is not served"),
        (pb.GrpsMessage(model="summary"), 400, "the request has no data"),
        (unset, 400, "dtype DT_INVALID is not one of"),
        (mismatched, 400, "flat_int32 holds values, but a DT_FLOAT32 tensor"),
        (pb.GrpsMessage(model="summary", ndarray=pb.NDArrayData()), 400, "ndarray is for HTTP"),
    ):
        answer = stub.Predict(request)
        assert (answer.status.code, answer.status.status) == (status, pb.Status.FAILURE)
        assert message in answer.status.msg
    missing = stub.ModelMetadata(pb.GrpsMessage())
    assert (missing.status.code, missing.status.status) == (400, pb.Status.FAILURE)
