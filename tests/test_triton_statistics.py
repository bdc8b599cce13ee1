"""Triton's statistics extension and ``nv_inference_*`` metrics on a real server, read with
tritonclient and a scrape of the metrics plane: successes and failures, queue and compute
time, inferences, executions and batch sizes, per model version."""

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

A = np.array([[1, 2, 3, 4]], dtype=np.float32)
B = np.array([[10, 20, 30, 40]], dtype=np.int64)
CONFIG = pair_config(4)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    onnx, _ = save_onnx_pair(tmp_path_factory.mktemp("onnx"))
    repository = tmp_path_factory.mktemp("repository")
    add_version(repository / "pair", "1", onnx)
    (repository / "pair" / "config.pbtxt").write_text(CONFIG)
    server = start_server(
        tmp_path_factory.mktemp("server"),
        model_store,
        args=["--model-repository", str(repository)],
    )
    wait_until(lambda: "Ready:" in server.log(), timeout=60)
    yield server
    server.stop()


def _infer(client: triton.InferenceServerClient, b_type: str) -> None:
    inputs = [triton.InferInput("a", [1, 4], "FP32"), triton.InferInput("b", [1, 4], b_type)]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B.astype(np.float32 if b_type == "FP32" else np.int64))
    client.infer("pair", inputs)


def test_statistics_count_what_was_served(served: RunningServer) -> None:
    client = triton.InferenceServerClient(served.inference.removeprefix("http://"))
    _infer(client, "INT64")
    _infer(client, "INT64")
    with pytest.raises(InferenceServerException):
        _infer(client, "FP32")  # b is INT64: the handler refuses it
    (stats,) = client.get_inference_statistics("pair")["model_stats"]
    assert (stats["name"], stats["version"]) == ("pair", "1")
    inference = stats["inference_stats"]
    assert inference["success"]["count"] == 2 and inference["fail"]["count"] == 1
    assert inference["success"]["ns"] > 0 and inference["queue"]["count"] == 3
    assert inference["compute_infer"]["count"] == 3 and inference["compute_infer"]["ns"] > 0
    assert stats["inference_count"] == 3 and stats["execution_count"] == 3
    assert stats["last_inference"] > 0
    assert [batch["batch_size"] for batch in stats["batch_stats"]] == [1]
    assert stats["batch_stats"][0]["compute_infer"]["count"] == 3
    # Every model, and one version, answer in the same shape.
    everything = client.get_inference_statistics()["model_stats"]
    assert [entry["name"] for entry in everything] == ["pair"]
    one = client.get_inference_statistics("pair", "1")["model_stats"]
    assert one[0]["inference_stats"]["success"]["count"] == 2
    missing = httpx.get(served.inference + "/v2/models/nope/stats")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    client.close()


def test_triton_metrics_beside_torchserves(served: RunningServer) -> None:
    client = triton.InferenceServerClient(served.inference.removeprefix("http://"))
    _infer(client, "INT64")
    client.close()
    scrape = httpx.get(served.metrics + "/metrics").text
    labels = '{model="pair",version="1"}'
    for name in (
        "nv_inference_request_success",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
    ):
        value = next(line for line in scrape.splitlines() if line.startswith(name + labels))
        assert float(value.split()[-1]) > 0, value
    assert f"nv_inference_pending_request_count{labels} 0.0" in scrape
    assert "ts_inference_requests_total" in scrape  # TorchServe's stay
