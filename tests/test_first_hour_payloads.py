"""What a new user's first requests send, through the real server and the real ``curl``.

* Integer JSON reaches a float model as the model's own dtype (its weights', or the model
  config's declared ``inputs:``), while typed bodies (.npy) keep theirs.
* ``curl -d`` / ``--data-binary`` label every body a urlencoded form: the bytes still reach the
  handler as its body unless they are a genuine form; an error never calls a non-empty
  request empty.
* A client error (4xx) is one line in the model log; a server fault keeps its traceback.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from framework_models import eager_class, save_torchscript, tensor_archive
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from PIL import Image
from support import RunningServer, build_test_archive, ready_workers, start_server, wait_until

# torch.jit is deprecated in recent torch, and still what TorchScript users archive.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated")

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"
INTEGERS = [[1, 2, 3, 4], [0, -1, 5, 2]]
TOKEN_IDS = [[1, 2, 3], [4, 4, 0]]


class TokenBag(torch.nn.Module):
    """Token ids → the mean of their embeddings: an input that must stay integer."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.EmbeddingBag(8, 3, mode="mean")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)


@dataclass
class Served:
    """The server, its log directory, and the in-process answers to compare with."""

    server: RunningServer
    log_dir: Path
    references: dict[str, Callable[[np.ndarray], np.ndarray]]

    def url(self, model: str) -> str:
        return f"{self.server.inference}/predictions/{model}"

    def model_log(self, model: str) -> list[str]:
        """The complete lines the model log holds so far for ``model``'s workers."""
        path = self.log_dir / "model_log.log"
        text = path.read_text() if path.exists() else ""
        return [line for line in text[: text.rfind("\n") + 1].splitlines() if f"[{model}:" in line]


def _script(module: torch.nn.Module, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Save ``module`` as TorchScript; the reference is the saved file loaded back."""
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    loaded = torch.jit.load(str(path)).eval()

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return loaded(torch.from_numpy(x)).numpy()

    return reference


def _archive(store: Path, name: str, handler: str, serialized: Path, **options: Any) -> str:
    build_archive(
        ArchiveOptions(
            model_name=name,
            version="1.0",
            handler=handler,
            serialized_file=str(serialized),
            export_path=store,
            force=True,
            **options,
        )
    )
    return f"{name}.mar"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    build = tmp_path_factory.mktemp("first_hour_models")
    store = tmp_path_factory.mktemp("first_hour_store")
    tiny, tiny_reference = save_torchscript(build)
    wide_reference = _script(eager_class()().double(), build / "wide.pt")
    torch.manual_seed(0)
    bag_reference = _script(TokenBag(), build / "bag.pt")
    declared = build / "bag.yaml"
    declared.write_text("inputs:\n  - {name: ids, datatype: INT64, shape: [-1, -1]}\n")
    # The digits example's handler, on an untrained net of the same shape: requests need only
    # reach it, and its in-process answer is the reference.
    torch.jit.save(
        torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))),
        str(build / "digits.pt"),
    )
    archives = [
        tensor_archive(store, "tiny", tiny),
        _archive(store, "wide", "tensor", build / "wide.pt"),
        _archive(store, "bag", "tensor", build / "bag.pt"),
        _archive(store, "bag_declared", "tensor", build / "bag.pt", config_file=str(declared)),
        _archive(store, "digits", str(DIGITS / "handler.py"), build / "digits.pt"),
    ]
    build_test_archive(store, "files", "files_echo.py")
    build_test_archive(store, "failing", "fails_on_request.py")
    workdir = tmp_path_factory.mktemp("first_hour_server")
    log_dir = workdir / "logs"
    models = [f"{archive[:-4]}={archive}" for archive in archives]
    server = start_server(
        workdir,
        store,
        models=[*models, "files=files.mar", "failing=failing.mar"],
        config={"log_dir": str(log_dir), "default_workers_per_model": "1"},
    )
    try:
        for model in ("tiny", "wide", "bag", "bag_declared", "digits", "files", "failing"):
            wait_until(lambda model=model: ready_workers(server, model), timeout=120)
        references = {"tiny": tiny_reference, "wide": wide_reference, "bag": bag_reference}
        yield Served(server, log_dir, references)
    finally:
        server.stop()


def curl(*args: str) -> tuple[int, bytes]:
    """Run the real ``curl`` binary as a user would; its status code and body."""
    marker = b"\n--status:"
    result = subprocess.run(
        ["curl", "-s", "-w", f"{marker.decode()}%{{http_code}}", *args],
        capture_output=True,
        check=True,
        timeout=60,
    )
    body, _, status = result.stdout.rpartition(marker)
    return int(status), body


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")


# --- integer JSON to a float model ---------------------------------------------------------


def test_integer_json_reaches_a_float32_model_as_float32(served: Served) -> None:
    response = httpx.post(served.url("tiny"), json=INTEGERS)
    assert response.status_code == 200, response.text
    expected = served.references["tiny"](np.array(INTEGERS, dtype=np.float32))
    assert np.allclose(response.json(), expected, atol=1e-6)


def test_json_reaches_a_float64_model_as_float64(served: Served) -> None:
    for body in (INTEGERS, (np.array(INTEGERS) / 3).tolist()):
        response = httpx.post(served.url("wide"), json=body)
        assert response.status_code == 200, response.text
        expected = served.references["wide"](np.array(body, dtype=np.float64))
        assert np.allclose(response.json(), expected, rtol=1e-12)
    # The v2 metadata says what the model computes in.
    metadata = httpx.get(f"{served.server.inference}/v2/models/wide").json()
    assert [tensor["datatype"] for tensor in metadata["inputs"]] == ["FP64"]


def test_tf_serving_integers_reach_a_float_model(served: Served) -> None:
    response = httpx.post(
        f"{served.server.inference}/v1/models/tiny:predict", json={"instances": INTEGERS}
    )
    assert response.status_code == 200, response.text
    expected = served.references["tiny"](np.array(INTEGERS, dtype=np.float32))
    assert np.allclose(response.json()["predictions"], expected, atol=1e-6)


def test_a_typed_npy_body_keeps_its_dtype(served: Served) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array(INTEGERS, dtype=np.int64))
    response = httpx.post(
        served.url("tiny"), content=buffer.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 400
    assert "the model rejected the input (x: shape (2, 4) int64)" in response.json()["message"]


def test_declared_input_datatype_wins_over_the_weights(served: Served) -> None:
    # Token ids for an embedding: without a declaration they go as the weights' float32, and
    # the model says so; declared INT64 in the model config, they stay integers.
    refused = httpx.post(served.url("bag"), json=TOKEN_IDS)
    assert refused.status_code == 400
    assert "(ids: shape (2, 3) float32)" in refused.json()["message"]
    response = httpx.post(served.url("bag_declared"), json=TOKEN_IDS)
    assert response.status_code == 200, response.text
    expected = served.references["bag"](np.array(TOKEN_IDS, dtype=np.int64))
    assert np.allclose(response.json(), expected, atol=1e-6)
    floats = httpx.post(served.url("bag_declared"), json=[[1.5, 2.0]])
    assert floats.status_code == 400
    assert 'input "ids": expected int64 values, got float64' in floats.json()["message"]


# --- curl's default form content type ------------------------------------------------------


@needs_curl
def test_curl_d_json_reaches_the_tensor_handler(served: Served) -> None:
    status, body = curl("-d", json.dumps(INTEGERS), served.url("tiny"))
    assert status == 200, body
    expected = served.references["tiny"](np.array(INTEGERS, dtype=np.float32))
    assert np.allclose(json.loads(body), expected, atol=1e-6)


@needs_curl
def test_curl_data_binary_image_reaches_the_digits_handler(served: Served, tmp_path: Path) -> None:
    image = tmp_path / "digit.jpg"
    Image.open(DIGITS / "sample.png").convert("RGB").save(image, "JPEG")
    status, body = curl("--data-binary", f"@{image}", served.url("digits"))
    assert status == 200, body
    answer = json.loads(body)
    # The same bytes, sent with their own content type, get the same answer.
    expected = httpx.post(
        served.url("digits"), content=image.read_bytes(), headers={"content-type": "image/jpeg"}
    ).json()
    assert answer == expected and set(answer) == {"digit", "probabilities"}
    # Byte for byte: a JPEG is never taken for a form.
    status, body = curl("--data-binary", f"@{image}", served.url("files"))
    assert json.loads(body) == {"body": {"type": "bytes", "size": image.stat().st_size}}


@needs_curl
def test_a_genuine_form_still_arrives_as_form_fields(served: Served) -> None:
    status, body = curl("-d", "data=hello+w%C3%B6rld&target=3", served.url("files"))
    assert status == 200, body
    assert json.loads(body) == {
        "data": {"type": "bytes", "size": len("hello wörld".encode())},
        "target": {"type": "bytes", "size": 1},
    }


@needs_curl
@pytest.mark.parametrize("model", ["tiny", "digits"])
def test_an_error_names_what_arrived_instead_of_calling_it_empty(
    served: Served, model: str
) -> None:
    status, body = curl("-d", "image=abc", served.url(model))
    assert status == 400, body
    message = json.loads(body)["message"]
    assert "'image' (3 bytes)" in message
    assert "empty" not in message


# --- log noise -----------------------------------------------------------------------------


def test_a_client_error_is_one_log_line_and_a_fault_keeps_its_traceback(served: Served) -> None:
    refused = httpx.post(served.url("failing"), content=b"refuse:no such colour 'bleu'")
    assert refused.status_code == 400
    assert refused.json() == {
        "code": 400,
        "type": "PredictionException",
        "message": "no such colour 'bleu'",
    }
    lines = wait_until(
        lambda: [line for line in served.model_log("failing") if "no such colour" in line]
    )
    assert len(lines) == 1
    assert re.search(r"batch of 1 \(request [0-9a-f-]{36}\): 400 PredictionException", lines[0])
    assert not [line for line in served.model_log("failing") if "Traceback" in line]

    crashed = httpx.post(served.url("failing"), content=b"crash:division by cucumber")
    assert crashed.status_code == 500
    wait_until(
        lambda: any(
            "RuntimeError: division by cucumber" in line for line in served.model_log("failing")
        )
    )
    assert any("Traceback (most recent call last):" in line for line in served.model_log("failing"))
