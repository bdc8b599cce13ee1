"""BLS under token authorization with the key file: a Python model's requests to the server
present the workers' own key, which opens the inference plane, never expires and is never
written to the key file; a client still needs the inference key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import RunningServer, start_server, wait_until

ROOT = Path(__file__).resolve().parents[1]
BLS_MODEL = ROOT / "tests" / "fixtures" / "triton_models" / "controller"
ADD_SUB = ROOT / "examples" / "triton" / "model_repository" / "add_sub"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    repository = tmp_path_factory.mktemp("repository")
    for source in (BLS_MODEL, ADD_SUB):
        shutil.copytree(source, repository / source.name)
    server = start_server(
        tmp_path_factory.mktemp("server"),
        model_store,
        args=["--model-repository", str(repository), "--model-control-mode=explicit"],
        config={"disable_token_authorization": "false"},
    )
    yield server
    server.stop()


def _keys(server: RunningServer) -> dict:
    return json.loads((server.log_path.parent / "key_file.json").read_text())


def test_a_model_reaches_the_server_with_the_workers_key(keyed: RunningServer) -> None:
    wait_until(lambda: (keyed.log_path.parent / "key_file.json").exists(), 60)
    keys = _keys(keyed)
    inference = {"Authorization": f"Bearer {keys['inference']['key']}"}
    url = f"{keyed.inference}/v2/repository/models/controller/load"
    assert httpx.post(url, headers=inference, timeout=120).status_code == 200
    body = {
        "inputs": [
            {"name": "COMMAND", "shape": [2], "datatype": "BYTES", "data": ["load", "add_sub"]}
        ]
    }
    infer = f"{keyed.inference}/v2/models/controller/infer"
    assert httpx.post(infer, json=body, timeout=120).status_code == 401  # a client needs a key
    answer = httpx.post(infer, json=body, headers=inference, timeout=120)
    assert answer.status_code == 200, answer.text
    # The model's own load_model and is_model_ready went through with the workers' key.
    assert answer.json()["outputs"][0]["data"] == [True]
    assert (
        httpx.get(f"{keyed.inference}/v2/models/add_sub/ready", headers=inference).status_code
        == 200
    )
    assert set(_keys(keyed)) == {"management", "inference", "API"}  # no fourth key written
