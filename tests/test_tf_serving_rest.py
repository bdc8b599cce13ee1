"""TensorFlow Serving's REST API (KServe v1), through the real server.

The examples of TF Serving's REST API documentation (row and columnar format, version and
label routes, model status and metadata), sent with httpx to real models archived for the
``tensor`` handler; answers are compared with the frameworks called in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from framework_models import SAMPLE, save_onnx_pair, save_torchscript
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from support import RunningServer, start_server

# torch.jit is deprecated in recent torch, and still what TorchScript users archive.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning"),
]

B = np.array([[1, 2, 3, 4], [-1, 0, 1, 2]], dtype=np.int64)
LABELS_CONFIG = 'versionLabels:\n  stable: "1.0"\n  canary: "2.0"\n  ghost: "7.0"\n'
OK = {"error_code": "OK", "error_message": ""}


@dataclass
class Served:
    server: RunningServer
    references: dict[str, Any]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server.inference + path, timeout=60)

    def post(self, path: str, body: Any = None, content: bytes | None = None) -> httpx.Response:
        return httpx.post(self.server.inference + path, json=body, content=content, timeout=60)


def save_onnx_doubler(directory: Path) -> Path:
    """``y = 2 x`` for ``x`` of shape (N, 4): a second version that answers differently."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.array(2, dtype=np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = directory / "doubler.onnx"
    onnx.save(model, str(path))
    return path


def archive(
    store: Path, name: str, version: str, serialized: Path, config: Path | None = None
) -> str:
    export = store / f"{name}-{version}"
    export.mkdir()
    build_archive(
        ArchiveOptions(
            model_name=name,
            version=version,
            handler="tensor",
            serialized_file=str(serialized),
            config_file=str(config) if config else None,
            export_path=export,
            force=True,
        )
    )
    (export / f"{name}.mar").rename(store / f"{name}-{version}.mar")
    return f"{name}-{version}.mar"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """tiny 1.0 (TorchScript, the default) and 2.0 (ONNX doubler), labelled stable and canary
    in their model config; pair (ONNX, inputs a and b)."""
    build = tmp_path_factory.mktemp("tf_models")
    store = tmp_path_factory.mktemp("tf_store")
    script_file, script_reference = save_torchscript(build)
    doubler_file = save_onnx_doubler(build)
    pair_file, pair_reference = save_onnx_pair(build)
    config = build / "labels.yaml"
    config.write_text(LABELS_CONFIG)
    urls = [
        archive(store, "tiny", "1.0", script_file, config),
        archive(store, "tiny", "2.0", doubler_file, config),
        archive(store, "pair", "1.0", pair_file),
    ]
    server = start_server(tmp_path_factory.mktemp("tf_server"), store)
    try:
        with httpx.Client(base_url=server.management, timeout=120) as management:
            for url in urls:
                response = management.post("/models", params={"url": url, "initial_workers": 1})
                assert response.status_code == 200, response.text
        references = {
            "tiny": script_reference,
            "doubler": lambda x: x * 2,
            "pair": pair_reference,
        }
        yield Served(server, references)
    finally:
        server.stop()


def assert_error(response: httpx.Response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert fragment in body["error"]


# ----- status and metadata


def test_model_status(served: Served) -> None:
    response = served.get("/v1/models/tiny")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_version_status": [
            {"version": "1.0", "state": "AVAILABLE", "status": OK},
            {"version": "2.0", "state": "AVAILABLE", "status": OK},
        ]
    }
    assert served.get("/v1/models/tiny/versions/2.0").json() == {
        "model_version_status": [{"version": "2.0", "state": "AVAILABLE", "status": OK}]
    }
    assert served.get("/v1/models/tiny/labels/canary").json() == {
        "model_version_status": [{"version": "2.0", "state": "AVAILABLE", "status": OK}]
    }


def test_model_metadata(served: Served) -> None:
    response = served.get("/v1/models/pair/metadata")
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["model_spec"] == {"name": "pair", "signature_name": "", "version": "1.0"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    dims = [{"size": "-1", "name": ""}, {"size": "4", "name": ""}]
    shape = {"dim": dims, "unknown_rank": False}
    assert signature["inputs"] == {
        "a": {"dtype": "DT_FLOAT", "tensor_shape": shape, "name": "a"},
        "b": {"dtype": "DT_INT64", "tensor_shape": shape, "name": "b"},
    }
    assert set(signature["outputs"]) == {"sum", "product"}
    assert signature["outputs"]["sum"]["dtype"] == "DT_FLOAT"
    versioned = served.get("/v1/models/tiny/versions/2.0/metadata").json()
    assert versioned["model_spec"]["version"] == "2.0"
    labelled = served.get("/v1/models/tiny/labels/stable/metadata").json()
    assert labelled["model_spec"]["version"] == "1.0"


# ----- predict


def test_row_format(served: Served) -> None:
    response = served.post("/v1/models/tiny:predict", {"instances": SAMPLE.tolist()})
    assert response.status_code == 200, response.text
    (key,) = response.json()
    assert key == "predictions"
    assert np.allclose(response.json()["predictions"], served.references["tiny"](SAMPLE), atol=1e-6)
    # Named inputs: one object per instance, one object per prediction.
    instances = [{"a": a.tolist(), "b": b.tolist()} for a, b in zip(SAMPLE, B, strict=True)]
    body = {"signature_name": "serving_default", "instances": instances}
    response = served.post("/v1/models/pair:predict", body)
    assert response.status_code == 200, response.text
    expected = served.references["pair"](a=SAMPLE, b=B)
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for row, prediction in enumerate(predictions):
        assert set(prediction) == {"sum", "product"}
        for name, value in expected.items():
            assert np.allclose(prediction[name], value[row], atol=1e-6)


def test_columnar_format(served: Served) -> None:
    response = served.post("/v1/models/tiny:predict", {"inputs": SAMPLE.tolist()})
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["outputs"]
    assert np.allclose(response.json()["outputs"], served.references["tiny"](SAMPLE), atol=1e-6)
    body = {"inputs": {"a": SAMPLE.tolist(), "b": B.tolist()}}
    response = served.post("/v1/models/pair:predict", body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    for name, value in served.references["pair"](a=SAMPLE, b=B).items():
        assert np.allclose(outputs[name], value, atol=1e-6)


def test_version_and_label_routes(served: Served) -> None:
    body = {"instances": SAMPLE.tolist()}
    tiny = served.references["tiny"](SAMPLE)
    doubled = served.references["doubler"](SAMPLE)
    for path, expected in (
        ("/v1/models/tiny/versions/1.0:predict", tiny),
        ("/v1/models/tiny/versions/2.0:predict", doubled),
        ("/v1/models/tiny/labels/stable:predict", tiny),
        ("/v1/models/tiny/labels/canary:predict", doubled),
    ):
        response = served.post(path, body)
        assert response.status_code == 200, (path, response.text)
        assert np.allclose(response.json()["predictions"], expected, atol=1e-6), path


def test_explain_reaches_the_handler(served: Served) -> None:
    response = served.post("/v1/models/tiny:explain", {"instances": SAMPLE.tolist()})
    # The tensor handler has no explanations: whatever it answers, it is not a server error
    # and it is TF Serving's shape.
    assert response.status_code < 500, response.text
    assert isinstance(response.json(), dict)


# ----- errors


def test_unknown_model_version_and_label(served: Served) -> None:
    body = {"instances": SAMPLE.tolist()}
    assert_error(served.post("/v1/models/nope:predict", body), 404, "nope")
    assert_error(served.post("/v1/models/tiny/versions/9.9:predict", body), 404, "9.9")
    assert_error(served.post("/v1/models/tiny/labels/beta:predict", body), 404, "beta")
    # A label naming a version that is not registered.
    assert_error(served.post("/v1/models/tiny/labels/ghost:predict", body), 404, "7.0")
    assert_error(served.get("/v1/models/nope"), 404, "nope")
    assert_error(served.get("/v1/models/tiny/versions/9.9"), 404)
    assert_error(served.get("/v1/models/tiny/labels/beta"), 404, "beta")
    assert_error(served.get("/v1/models/nope/metadata"), 404)
    assert_error(served.get("/v1/models/a%0Ab"), 404, "a\nb")  # a newline: still TF's error
    # Paths that name nothing.
    assert_error(served.post("/v1/models/tiny", body), 404, "Malformed")
    assert_error(served.post("/v1/models/tiny:frobnicate", body), 404)
    assert_error(served.get("/v1/models/tiny/extra/parts/here"), 404)
    assert_error(served.get("/v1/models/tiny:predict"), 405, "POST")
    assert_error(served.post("/v1/models/tiny:classify", body), 501, "classify")
    assert_error(httpx.put(served.server.inference + "/v1/models/tiny:predict"), 405)


def test_bad_requests(served: Served) -> None:
    assert_error(served.post("/v1/models/tiny:predict", content=b'{"instances": [[1, 2'), 400)
    assert_error(served.post("/v1/models/tiny:predict", {"signature_name": "x"}), 400)
    both = {"instances": SAMPLE.tolist(), "inputs": SAMPLE.tolist()}
    assert_error(served.post("/v1/models/tiny:predict", both), 400)
    assert_error(served.post("/v1/models/tiny:predict", {"instances": [[1, 2, 3]]}), 400)
