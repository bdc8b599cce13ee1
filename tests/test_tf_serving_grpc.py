"""TensorFlow Serving's classic, answered as TF Serving answers it: the half_plus_two SavedModel
exported by TensorFlow in versions 1 and 2 under one base path, served with
``--model_name``/``--model_base_path``; REST ``:predict`` and the real tensorflow-serving-api
gRPC client (PredictionService and ModelService) both get version 2's values."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import RunningServer, start_server, wait_until

FIXTURES = Path(__file__).parent / "fixtures"
X = [1.0, 2.0, 5.0]
VERSION_1 = [0.5 * x + 2 for x in X]  # half plus two
VERSION_2 = [0.5 * x + 3 for x in X]  # version 2 adds 3, so the answer tells which served


def _export(saved_model: Path, offset: float) -> None:
    script = FIXTURES / "models" / "half_plus_two.py"
    subprocess.run(
        [sys.executable, str(script), str(saved_model), str(offset)],
        check=True,
        capture_output=True,
    )


def tf_serving_client(server: RunningServer, calls: list[dict[str, Any]]) -> list[dict]:
    """What tensorflow-serving-api answers to ``calls`` (see fixtures/tf_serving_client.py)."""
    script = FIXTURES / "tf_serving_client.py"
    done = subprocess.run(
        [sys.executable, str(script), server.grpc_inference, json.dumps(calls)],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def base_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("models") / "half_plus_two"
    _export(base / "1", 2.0)
    _export(base / "2", 3.0)
    return base


def _serving(server: RunningServer, name: str) -> bool:
    return httpx.get(f"{server.inference}/v1/models/{name}").status_code == 200


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, base_path: Path, model_store: Path
) -> Iterator[RunningServer]:
    args = ["--model_name=half_plus_two", f"--model_base_path={base_path}"]
    server = start_server(tmp_path_factory.mktemp("server"), model_store, args=args)
    wait_until(lambda: _serving(server, "half_plus_two"), timeout=120)
    yield server
    server.stop()


def test_rest_predict_answers_the_latest_version(served: RunningServer) -> None:
    url = f"{served.inference}/v1/models/half_plus_two:predict"
    answer = httpx.post(url, json={"instances": X}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": pytest.approx(VERSION_2)}


def test_the_tf_serving_client_predicts_and_reads_status(served: RunningServer) -> None:
    model = "half_plus_two"
    predicted, by_version, status, metadata = tf_serving_client(
        served,
        [
            {"call": "predict", "model": model, "x": X},
            {"call": "predict", "model": model, "x": X, "version": 2},
            {"call": "status", "model": model},
            {"call": "metadata", "model": model},
        ],
    )
    # Answered in float_val, as TF Serving answers; tf.make_ndarray reads the same.
    assert predicted == {"y": VERSION_2, "float_val": VERSION_2, "version": 2}
    assert by_version == predicted
    assert status == {"versions": [{"version": 2, "state": "AVAILABLE", "error_code": 0}]}
    assert metadata == {
        "version": 2,
        "method_name": "tensorflow/serving/predict",
        "inputs": {"x": "float32"},
        "outputs": {"y": "float32"},
    }


def test_the_tf_serving_client_gets_clear_errors(served: RunningServer) -> None:
    model = "half_plus_two"
    answers = tf_serving_client(
        served,
        [
            {"call": "predict", "model": "nope", "x": X},
            {"call": "predict", "model": model, "x": X, "version": 1},  # latest only: not served
            {"call": "predict", "model": model, "x": X, "label": "stable"},
            {"call": "predict", "model": model, "x": X, "signature": "other"},
            {"call": "predict", "model": model, "x": ["a", "b"], "dtype": "DT_STRING"},
            {"call": "classify", "model": model},
            {"call": "predict", "model": model, "x": X},  # and the model still serves
        ],
    )
    codes = [answer.get("error") for answer in answers]
    assert codes == [
        "NOT_FOUND",
        "NOT_FOUND",
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "UNIMPLEMENTED",
        None,
    ]
    assert "nope" in answers[0]["message"]
    assert "stable" in answers[2]["message"]
    assert "'other' not found" in answers[3]["message"]
    assert "Predict" in answers[5]["message"]
    assert answers[-1]["y"] == VERSION_2


def test_a_config_reload_serves_what_it_lists(
    tmp_path: Path, base_path: Path, model_store: Path
) -> None:
    args = ["--model_name=half_plus_two", f"--model_base_path={base_path}"]
    server = start_server(tmp_path / "server", model_store, args=args)
    try:
        wait_until(lambda: _serving(server, "half_plus_two"), timeout=120)
        every = {"name": "every_version", "base_path": str(base_path), "all_versions": True}
        missing = {"name": "missing", "base_path": str(tmp_path / "none")}
        reloaded, status, old_one, predicted, refused = tf_serving_client(
            server,
            [
                {"call": "reload", "models": [every]},  # half_plus_two is not listed: it goes
                {"call": "status", "model": "every_version"},
                {"call": "status", "model": "half_plus_two"},
                {"call": "predict", "model": "every_version", "x": X, "version": 1},
                {"call": "reload", "models": [every, missing]},
            ],
        )
        assert reloaded == {"error_code": 0}
        assert [entry["version"] for entry in status["versions"]] == [1, 2]
        assert old_one["error"] == "NOT_FOUND"
        assert predicted["y"] == VERSION_1
        assert refused["error"] == "INVALID_ARGUMENT" and "missing" in refused["message"]
        assert _serving(server, "every_version")  # the failed reload left it serving
    finally:
        server.stop()
