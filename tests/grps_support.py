"""grps users' side of the grps tests: ``modelserve torch_serve | tf_serve`` run as grpst's
commands are, grps's Python client package (``grps_apis``) generated from modelserve's
grps.proto as grps generates it from its own, the client examples of grps's quick-deploy docs
run as scripts, and the model those examples fit.

The examples (grps's docs/4_QuickDeploy.md) send a (1, 224, 224, 3) float32 image, once as a
gtensor of shape [1, 3, 224, 224] and once as an ndarray: ``SUMMARY`` takes any shape and
answers, per row, three statistics of it times a (3, 2) weight.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from support import free_ports, run_cli

from modelserve.grps.proto import grps_pb2

GRPS_PROTO = Path(grps_pb2.__file__).with_name("grps.proto")
TF_SUMMARY_SCRIPT = Path(__file__).parent / "fixtures" / "models" / "summary_tf_net.py"
SUMMARY_WEIGHT = np.random.default_rng(11).standard_normal((3, 2)).astype(np.float32)


class Summary(torch.nn.Module):
    """Per row: mean, max and min of everything in it, times ``weight``."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.flatten(1)
        stats = torch.stack([rows.mean(1), rows.amax(1), rows.amin(1)], dim=1)
        return stats @ self.weight


def save_summary_torchscript(directory: Path) -> tuple[Path, torch.jit.ScriptModule]:
    """The scripted Summary, and the same file loaded in this process (the reference)."""
    path = directory / "summary.pt"
    torch.jit.save(torch.jit.script(Summary(SUMMARY_WEIGHT).eval()), str(path))
    return path, torch.jit.load(str(path)).eval()


def torch_answer(module: torch.jit.ScriptModule, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def save_summary_saved_model(directory: Path) -> Path:
    """Summary as a TensorFlow SavedModel (TensorFlow runs in a process of its own, as
    tiny_tf_net.py explains)."""
    saved = directory / "summary_saved_model"
    weight = directory / "summary_weight.npy"
    np.save(weight, SUMMARY_WEIGHT)
    command = [sys.executable, str(TF_SUMMARY_SCRIPT), "save", str(saved), str(weight)]
    subprocess.run(command, check=True, capture_output=True)
    return saved


def tensorflow_answer(saved: Path, x: np.ndarray, scratch: Path) -> np.ndarray:
    """What the SavedModel answers ``x``, computed by TensorFlow in a process of its own."""
    inputs, answers = scratch / "tf_inputs.npy", scratch / "tf_answers.npy"
    np.save(inputs, x)
    command = [sys.executable, str(TF_SUMMARY_SCRIPT), "answer", str(saved), str(inputs)]
    subprocess.run([*command, str(answers)], check=True, capture_output=True)
    return np.load(answers)


def grps_apis(directory: Path) -> Path:
    """grps's client package generated from modelserve's grps.proto, as grps's py_install.sh
    generates it from grps's own; returns the directory to put on PYTHONPATH."""
    from grpc_tools import protoc

    package = directory / "grps_apis"
    package.mkdir(parents=True)
    shutil.copy(GRPS_PROTO, package / "grps.proto")
    arguments = [f"-I{directory}", f"--python_out={directory}", f"--grpc_python_out={directory}"]
    assert protoc.main(["protoc", *arguments, str(package / "grps.proto")]) == 0
    return directory


# grps's quick-deploy client examples, as its docs have them (their comments left out), with
# the address of the server under test put in for 127.0.0.1:7080 / 127.0.0.1:7081.
HTTP_GTENSORS_EXAMPLE = """
import numpy as np
import requests

img = np.random.rand(1, 224, 224, 3).astype(np.float32)
gtensors = {
    'tensors': [{
        'name': '',
        'dtype': 'DT_FLOAT32',
        'shape': [1, 3, 224, 224],
        'flat_float32': img.flatten().tolist()
    }]
}
response = requests.post('http://127.0.0.1:7080/grps/v1/infer/predict', json={'gtensors': gtensors})
gtensors = response.json()['gtensors']
"""
HTTP_NDARRAY_EXAMPLE = """
import numpy as np
import requests

img = np.random.rand(1, 224, 224, 3).astype(np.float32)
response = requests.post('http://127.0.0.1:7080/grps/v1/infer/predict?return-ndarray=true',
                         json={'ndarray': img.tolist()})
ndarray = response.json()['ndarray']
"""
GRPC_EXAMPLE = """
import numpy as np
import grpc
from grps_apis.grps_pb2 import DataType, GenericTensor, GrpsMessage
from grps_apis.grps_pb2_grpc import GrpsServiceStub

grpc_client = GrpsServiceStub(channel=grpc.insecure_channel('127.0.0.1:7081'))
img = np.random.rand(1, 224, 224, 3).astype(np.float32)
request = GrpsMessage()

request.gtensors.tensors.append(
    GenericTensor(name='',
                  dtype=DataType.DT_FLOAT32,
                  shape=[1, 3, 224, 224],
                  flat_float32=img.flatten().tolist()))

response = grpc_client.Predict(request)
gtensors = response.gtensors
"""
# Appended to an example: what it sent and got, for the test (a proto answer as plain data).
_REPORT = """
import pickle as _pickle, sys as _sys
_got = globals().get("ndarray", globals().get("gtensors"))
if isinstance(_got, dict):  # HTTP's gtensors
    _got = _got["tensors"]
elif hasattr(_got, "tensors"):  # gRPC's
    _got = [{"name": t.name, "shape": list(t.shape), "dtype": DataType.Name(t.dtype),
             "flat_float32": list(t.flat_float32)} for t in _got.tensors]
_pickle.dump({"img": img, "got": _got}, open(_sys.argv[1], "wb"))
"""


def run_example(example: str, server: GrpsServer, scratch: Path, apis: Path) -> dict[str, Any]:
    """Run one client example against ``server``; what it sent (``img``) and got."""
    code = example.replace("127.0.0.1:7080", server.http_address)
    code = code.replace("127.0.0.1:7081", server.grpc_target)
    script, report = scratch / "example.py", scratch / "example.pickle"
    script.write_text(code + _REPORT)
    environment = {**os.environ, "PYTHONPATH": str(apis)}
    result = subprocess.run(
        [sys.executable, str(script), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with report.open("rb") as file:
        return pickle.load(file)


@dataclass
class GrpsServer:
    """A server started by a grps command, as ``modelserve ps --json`` records it."""

    name: str
    http_address: str  # 127.0.0.1:PORT
    grpc_target: str  # 127.0.0.1:PORT
    record: dict[str, Any]
    cwd: Path
    environment: dict[str, str]

    @property
    def http(self) -> str:
        return f"http://{self.http_address}"

    @property
    def metrics(self) -> str:
        return self.record["addresses"]["metrics"]

    @property
    def management(self) -> str:
        return self.record["addresses"]["management"]

    def predict(self, body: Any, **params: str) -> httpx.Response:
        url = f"{self.http}/grps/v1/infer/predict"
        return httpx.post(url, json=body, params=params, timeout=120)

    def worker_pids(self, model: str) -> list[int]:
        workers = httpx.get(f"{self.management}/models/{model}", timeout=30).json()[0]["workers"]
        return [worker["pid"] for worker in workers]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=self.cwd, env=self.environment)

    def stop(self) -> None:
        if self.cli("stop", self.name).returncode != 0:
            os.kill(self.record["pid"], signal.SIGKILL)


def environment(directory: Path) -> dict[str, str]:
    """A private runtime and temp directory: nothing shared with other servers."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    return {"MODELSERVE_RUNTIME_DIR": str(directory / "runtime"), "TMPDIR": str(directory / "tmp")}


def grps_serve(directory: Path, command: str, model: Path, *flags: str) -> GrpsServer:
    """``modelserve COMMAND MODEL --port HTTP,GRPC --no_logging FLAGS`` on free ports, run in
    ``directory`` as a grps user runs grpst: it returns once the model serves."""
    http, grpc = free_ports(2)
    name = f"grps-{http}"
    env = environment(directory)
    arguments = [command, str(model), "--port", f"{http},{grpc}", "--name", name, "--no_logging"]
    started = run_cli(*arguments, *flags, cwd=directory, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"Ready: {model.stem}." in started.stdout, started.stdout
    listed = run_cli("ps", "--json", "-n", name, cwd=directory, env=env)
    (record,) = json.loads(listed.stdout)
    return GrpsServer(name, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", record, directory, env)
