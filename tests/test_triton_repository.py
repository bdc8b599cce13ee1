"""Triton model repositories served unchanged: config.pbtxt read with protobuf's text_format
(errors name the field), numeric version directories and version policies, auto-complete from
the model file, what config.pbtxt says mapped onto batching, workers and tensor metadata; then
``modelserve start --model-repository`` answering tritonclient on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from framework_models import save_onnx_pair
from support import RunningServer, start_server, wait_until
from triton_fixtures import add_version, pair_config
from tritonclient.utils import InferenceServerException

from modelserve.repository.packing import model_yaml
from modelserve.repository.triton import RepositoryError, model_directories, read_model

PAIR_CONFIG = pair_config(
    8,
    "dynamic_batching { max_queue_delay_microseconds: 1500 "
    "default_queue_policy { max_queue_size: 7 } }\n"
    "instance_group [ { count: 2 kind: KIND_CPU } ]\n",
)
A = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32)
B = np.array([[1, 1, 1, 1], [2, 2, 2, 2]], dtype=np.int64)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = save_onnx_pair(tmp_path_factory.mktemp("onnx"))
    return path


def _model(root: Path, name: str, onnx: Path, versions: list[str], config: str | None) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    for version in versions:
        add_version(directory, version, onnx)
    if config is not None:
        (directory / "config.pbtxt").write_text(config)
    return directory


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", ["3"]),
        ("version_policy: { latest: { num_versions: 2 } }", ["2", "3"]),
        ("version_policy: { all: {} }", ["1", "2", "3"]),
        ("version_policy: { specific: { versions: [3, 1] } }", ["1", "3"]),
    ],
    ids=["latest 1 (default)", "latest 2", "all", "specific"],
)
def test_version_policies_choose_among_numeric_directories(
    tmp_path: Path, onnx_file: Path, policy: str, served: list[str]
) -> None:
    # 07 (a leading zero) and "draft" (not a number) are not versions, as in Triton.
    directory = _model(tmp_path, "pair", onnx_file, ["1", "2", "3", "07", "draft"], policy)
    model = read_model(directory, strict=False, config_name=None)
    assert [version.version for version in model.versions] == served
    assert model.backend == "onnx"  # told from model.onnx: no platform in the config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('name: "other"', "config.pbtxt names it 'other'"),
        ("optimization { }", 'has no field named "optimization"'),
        ("max_batch_size: many", "config.pbtxt:1:17 : 'max_batch_size: many'"),  # line:column
        (
            "model_transaction_policy { decoupled: true }",
            "decoupled models (model_transaction_policy { decoupled: true }) are served for the "
            "python backend only, not 'onnxruntime'",
        ),
        ('platform: "caffe2_netdef"', "'caffe2_netdef' is not served"),
        ("version_policy: { specific: { versions: [9] } }", "version(s) 9, which have no"),
        ('default_model_filename: "other.onnx"', "no other.onnx"),
    ],
)
def test_a_config_that_cannot_be_served_says_why(
    tmp_path: Path, onnx_file: Path, config: str, message: str
) -> None:
    directory = _model(tmp_path, "pair", onnx_file, ["1"], config)
    with pytest.raises(RepositoryError, match="model pair") as raised:
        read_model(directory, strict=False, config_name=None)
    assert message in str(raised.value)


def test_strict_config_and_alternative_config_names(tmp_path: Path, onnx_file: Path) -> None:
    bare = _model(tmp_path, "bare", onnx_file, ["1"], None)
    with pytest.raises(RepositoryError, match=r"no config\.pbtxt \(strict model config"):
        read_model(bare, strict=True, config_name=None)
    (bare / "configs").mkdir()
    (bare / "configs" / "small.pbtxt").write_text("max_batch_size: 2 dynamic_batching { }")
    chosen = read_model(bare, strict=True, config_name="small.pbtxt")
    assert chosen.config.max_batch_size == 2


def test_config_maps_to_batching_workers_and_tensors(tmp_path: Path, onnx_file: Path) -> None:
    model = read_model(_model(tmp_path, "pair", onnx_file, ["1"], PAIR_CONFIG), False, None)
    document = model_yaml(model.config, model.backend)
    assert document["batchSize"] == 8
    assert document["maxBatchDelay"] == 2  # 1.5 ms, rounded up
    assert document["jobQueueSize"] == 7
    assert (document["minWorkers"], document["maxWorkers"]) == (2, 2)
    assert document["deviceType"] == "cpu"
    assert document["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "b", "datatype": "INT64", "shape": [-1, 4]},
    ]
    unbatched = read_model(_model(tmp_path, "plain", onnx_file, ["1"], ""), False, None)
    assert model_yaml(unbatched.config, "onnx")["batchSize"] == 1


def test_a_name_in_two_repositories_is_served_from_neither(tmp_path: Path, onnx_file: Path) -> None:
    _model(tmp_path / "one", "pair", onnx_file, ["1"], PAIR_CONFIG)
    _model(tmp_path / "one", "solo", onnx_file, ["1"], None)
    _model(tmp_path / "two", "pair", onnx_file, ["1"], None)
    found, twice = model_directories([tmp_path / "one", tmp_path / "two"])
    assert found == {"solo": tmp_path / "one" / "solo"}
    assert list(twice) == ["pair"] and "in two repositories" in twice["pair"]
    with pytest.raises(RepositoryError, match="is not a directory"):
        model_directories([tmp_path / "absent"])


def test_a_repository_that_is_not_a_directory_stops_the_start(
    tmp_path: Path, model_store: Path
) -> None:
    args = ["--model-repository", str(tmp_path / "absent")]
    with pytest.raises(AssertionError, match=r"model repository .*absent is not a directory"):
        start_server(tmp_path / "server", model_store, args=args)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, onnx_file: Path, model_store: Path
) -> Iterator[RunningServer]:
    repository = tmp_path_factory.mktemp("triton_repository")
    _model(repository, "pair", onnx_file, ["1", "2"], PAIR_CONFIG + "version_policy: { all: {} }")
    _model(repository, "auto", onnx_file, ["1"], None)
    _model(repository, "broken", onnx_file, ["1"], "optimization { }")
    server = start_server(
        tmp_path_factory.mktemp("triton_server"),
        model_store,
        args=["--model-repository", str(repository), "--model-control-mode=none"],
    )
    wait_until(lambda: "Not serving" in server.log() or "Ready:" in server.log(), timeout=120)
    yield server
    server.stop()


def test_tritonclient_infers_on_a_served_repository(served: RunningServer) -> None:
    client = triton.InferenceServerClient(served.inference.removeprefix("http://"))
    inputs = [
        triton.InferInput("a", list(A.shape), "FP32"),
        triton.InferInput("b", [2, 4], "INT64"),
    ]
    inputs[0].set_data_from_numpy(A, binary_data=True)
    inputs[1].set_data_from_numpy(B, binary_data=True)
    for version in ("1", "2"):
        result = client.infer("pair", inputs, model_version=version)
        assert np.array_equal(result.as_numpy("sum"), A + B)
        assert np.array_equal(result.as_numpy("product"), A * B)
    metadata = client.get_model_metadata("pair")
    assert metadata["versions"] == ["1", "2"]
    assert {"name": "a", "datatype": "FP32", "shape": [-1, 4]} in metadata["inputs"]
    # No config.pbtxt: served from model.onnx, its tensors as the model reports them.
    assert client.is_model_ready("auto")
    assert [t["name"] for t in client.get_model_metadata("auto")["inputs"]] == ["a", "b"]
    client.close()


def test_the_config_sets_workers_and_batching_and_bad_models_are_named(
    served: RunningServer,
) -> None:
    described = httpx.get(served.management + "/models/pair/2").json()[0]
    assert (described["batchSize"], described["maxBatchDelay"]) == (8, 2)
    assert len(described["workers"]) == 2
    assert httpx.get(served.inference + "/v2/models/broken/ready").status_code == 404
    assert "model broken not served" in served.log() and "optimization" in served.log()


def test_the_model_config_and_repository_index_apis(served: RunningServer) -> None:
    client = triton.InferenceServerClient(served.inference.removeprefix("http://"))
    config = client.get_model_config("pair", "2")
    assert config["name"] == "pair" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 8
    assert config["input"][0] == {"name": "a", "data_type": "TYPE_FP32", "dims": [4]}
    assert config["dynamic_batching"] == {
        "max_queue_delay_microseconds": 1500,  # a JSON number, not protobuf's "1500"
        "default_queue_policy": {"max_queue_size": 7},
    }
    assert config["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    # Auto-completed: what the worker reports about model.onnx.
    auto = client.get_model_config("auto")
    assert [tensor["name"] for tensor in auto["input"]] == ["a", "b"]
    assert auto["input"][1]["data_type"] == "TYPE_INT64"
    index = client.get_model_repository_index()
    assert {(entry["name"], entry["version"], entry["state"]) for entry in index} == {
        ("auto", "1", "READY"),
        ("pair", "1", "READY"),
        ("pair", "2", "READY"),
    }
    assert httpx.post(served.inference + "/v2/repository/index", json={"ready": True}).json()
    bad = httpx.post(served.inference + "/v2/repository/index", content=b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    missing = httpx.get(served.inference + "/v2/models/nope/config")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    client.close()


def test_v2_advertises_the_extensions_served(served: RunningServer) -> None:
    extensions = httpx.get(served.inference + "/v2").json()["extensions"]
    assert set(extensions) == {
        "binary_tensor_data",
        "model_repository",
        "model_configuration",
        "statistics",
    }


def test_a_tensor_that_does_not_fit_the_config_is_refused(served: RunningServer) -> None:
    client = triton.InferenceServerClient(served.inference.removeprefix("http://"))
    wide = np.ones((2, 5), dtype=np.float32)  # config.pbtxt: dims [ 4 ]
    inputs = [triton.InferInput("a", [2, 5], "FP32"), triton.InferInput("b", [2, 4], "INT64")]
    inputs[0].set_data_from_numpy(wide)
    inputs[1].set_data_from_numpy(B)
    with pytest.raises(
        InferenceServerException, match=r'input "a": expected shape \(N, 4\), got \(2, 5\)'
    ) as refused:
        client.infer("pair", inputs)
    assert refused.value.status() == "400"
    assert np.array_equal(_pair_sum(client), A + B)  # and the model still serves
    client.close()


def _pair_sum(client: triton.InferenceServerClient) -> np.ndarray:
    inputs = [triton.InferInput("a", [2, 4], "FP32"), triton.InferInput("b", [2, 4], "INT64")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    return client.infer("pair", inputs).as_numpy("sum")
