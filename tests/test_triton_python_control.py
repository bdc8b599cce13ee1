"""A Triton Python model's life around ``execute``, on a real server in explicit model control:
``initialize(args)`` with Triton's string arguments, ``auto_complete_config`` declaring the
tensors, ``finalize()`` when the model is unloaded, and Triton's model loading API
(``pb_utils.load_model`` / ``unload_model`` / ``is_model_ready``) called from a model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import RunningServer, start_server, wait_until

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "triton_models"
ADD_SUB = ROOT / "examples" / "triton" / "model_repository" / "add_sub"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    repository = tmp_path_factory.mktemp("repository")
    for source in (FIXTURES / "controller", FIXTURES / "completed", ADD_SUB):
        shutil.copytree(source, repository / source.name)
    args = ["--model-repository", str(repository), "--model-control-mode=explicit"]
    args += ["--load-model=controller", "--load-model=completed"]
    server = start_server(tmp_path_factory.mktemp("server"), model_store, args=args)
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 120)
    yield server
    server.stop()


def _command(served: RunningServer, action: str, model: str) -> dict:
    body = {
        "inputs": [{"name": "COMMAND", "shape": [2], "datatype": "BYTES", "data": [action, model]}]
    }
    answer = httpx.post(f"{served.inference}/v2/models/controller/infer", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return {output["name"]: output["data"] for output in answer.json()["outputs"]}


def test_initialize_gets_tritons_arguments(served: RunningServer) -> None:
    args = json.loads(_command(served, "check", "controller")["ARGS"][0])
    assert args["model_name"] == "controller" and args["model_version"] == "1"
    assert args["model_instance_kind"] == "CPU" and args["model_instance_device_id"] == "0"
    assert args["model_instance_name"].startswith("controller_0_")
    assert json.loads(args["model_config"])["input"][0]["name"] == "COMMAND"
    assert (Path(args["model_repository"]) / "1" / "model.py").is_file()
    assert all(isinstance(value, str) for value in args.values())


def test_a_model_loads_and_unloads_another(served: RunningServer) -> None:
    assert _command(served, "check", "add_sub")["READY"] == [False]
    assert _command(served, "load", "add_sub")["READY"] == [True]
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]},
        ]
    }
    answer = httpx.post(f"{served.inference}/v2/models/add_sub/infer", json=body, timeout=60)
    assert answer.json()["outputs"][0]["data"] == [2, 3, 4, 5]
    # A blocking BLS request (exec) to it, and one to the calling model itself (refused).
    assert json.loads(_command(served, "infer", "add_sub")["NOTE"][0]) == [[2, 2, 2, 2]]
    refused = _command(served, "infer", "controller")["NOTE"][0]
    assert "from model controller to itself is refused" in refused
    assert _command(served, "unload", "add_sub")["READY"] == [False]
    wait_until(lambda: "add_sub unloaded" in served.log())  # its finalize() ran


def test_auto_complete_config_declares_the_tensors(served: RunningServer) -> None:
    metadata = httpx.get(f"{served.inference}/v2/models/completed").json()
    assert metadata["inputs"] == [{"name": "A", "datatype": "FP32", "shape": [-1, 2]}]
    body = {"inputs": [{"name": "A", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2]}]}
    url = f"{served.inference}/v2/models/completed/infer"
    assert httpx.post(url, json=body, timeout=60).json()["outputs"][0]["data"] == [15, 20]
    body["inputs"][0]["shape"] = [2, 1]
    refused = httpx.post(url, json=body, timeout=60)
    assert refused.status_code == 400 and "expected shape [-1, 2]" in refused.json()["error"]
