"""``modelserve serve PATH``: from a saved model to answered predictions in one command, with no
handler or archive written by the user.

The models are built here (TorchScript with torch.jit.script, ONNX with the onnx helpers) and
each answer is compared with the framework itself, called in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from framework_models import save_onnx_linear, save_torchscript
from modelserve_handlers.backends import detect_backend
from support import free_ports, wait_until

from modelserve import archive
from modelserve.quick_deploy import (
    QuickDeployError,
    ServeRequest,
    archive_inputs,
    prepare,
    servable_in,
)

X = (np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5) / 2
FORMATS_LINE = (
    "expected a TorchScript .pt/.pth file, an .onnx file, a TensorFlow SavedModel directory "
    "(with saved_model.pb), a TensorRT .engine/.plan/.trt file or a Paddle inference model "
    "(.pdmodel, or Paddle 3's .json, with its .pdiparams beside it)"
)


@dataclass
class Serving:
    """A ``modelserve serve`` process and where it listens."""

    process: subprocess.Popen
    log_path: Path
    inference: str
    management: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: signal.Signals) -> int:
        """Stop as a service manager (SIGTERM to the server) or Ctrl-C (SIGINT to the
        terminal's whole process group) would; the exit code."""
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def environment(tmp_path: Path) -> dict[str, str]:
    """The test's own runtime and temp dirs, so nothing is shared with other servers."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "MODELSERVE_RUNTIME_DIR": str(tmp_path / "runtime"),
        "TMPDIR": str(tmp_path / "tmp"),
        # Any free gRPC ports, not 7070/7071, which a parallel run may hold.
        "MODELSERVE_GRPC_INFERENCE_PORT": "0",
        "MODELSERVE_GRPC_MANAGEMENT_PORT": "0",
    }


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``modelserve serve ARGS`` that is expected to end on its own."""
    return subprocess.run(
        [sys.executable, "-m", "modelserve.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment(tmp_path),
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serving]]:
    """Start ``modelserve serve`` on free ports and wait for it to say it started."""
    started: list[Serving] = []

    def start(*args: str) -> Serving:
        ports = free_ports(3)
        command = [sys.executable, "-m", "modelserve.cli", "serve", *args]
        command += ["--port", str(ports[0]), "--management-port", str(ports[1])]
        command += ["--metrics-port", str(ports[2])]
        log_path = tmp_path / "serve.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=environment(tmp_path),
                start_new_session=True,  # its own process group, as a terminal gives it
            )
        serving = Serving(process, log_path, *(f"http://127.0.0.1:{port}" for port in ports[:2]))
        started.append(serving)

        def announced() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}:\n{serving.log()}")
            return "Model server started." in serving.log()

        wait_until(announced, timeout=60)
        return serving

    yield start
    for serving in started:
        if serving.process.poll() is None:
            serving.process.kill()
            serving.process.wait()


def predict(serving: Serving, model: str, rows: np.ndarray) -> httpx.Response:
    return httpx.post(
        f"{serving.inference}/predictions/{model}",
        json=rows.tolist(),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )


def test_serve_torchscript(tmp_path: Path, serve: Callable[..., Serving]) -> None:
    model, reference = save_torchscript(tmp_path)
    serving = serve(str(model), "--batch-size", "4", "--max-batch-delay", "20", "--workers", "2")
    # The printed curl line names this model on this port.
    assert f"curl -X POST {serving.inference}/predictions/tiny " in serving.log()

    response = predict(serving, "tiny", X)
    assert response.status_code == 200, response.text
    assert np.allclose(response.json(), reference(X), atol=1e-6)

    description = httpx.get(f"{serving.management}/models/tiny").json()[0]
    assert (description["batchSize"], description["maxBatchDelay"]) == (4, 20)
    assert (description["minWorkers"], description["maxWorkers"]) == (2, 2)
    assert len(description["workers"]) == 2
    assert description["deviceType"] == "cpu"
    # It serves the model it was given: no spare worker waits for another.
    wait_until(lambda: "spare worker off (spare_worker=false)" in serving.log())

    assert serving.stop(signal.SIGTERM) == 0
    assert list((tmp_path / "tmp").glob("modelserve-serve-*")) == []  # temp store removed


def test_serve_onnx_with_name_and_output(tmp_path: Path, serve: Callable[..., Serving]) -> None:
    model, reference = save_onnx_linear(tmp_path)
    output = tmp_path / "archives" / "linear.mar"
    serving = serve(str(model), "--name", "scorer", "--device", "cpu", "--output", str(output))

    response = predict(serving, "scorer", X)
    assert response.status_code == 200, response.text
    assert np.allclose(response.json(), reference(X), atol=1e-6)
    assert serving.stop(signal.SIGINT) == 0
    # The workers are not hit by Ctrl-C themselves: the server stops them, in order.
    assert "KeyboardInterrupt" not in serving.log()
    assert "restarting" not in serving.log()

    # The kept archive is one modelserve start (and TorchServe) can load.
    manifest = archive.read_manifest(output)
    assert (manifest.model_name, manifest.handler) == ("scorer", "tensor")
    assert manifest.serialized_file == "linear.onnx"


def test_saved_model_directory_is_packed_where_the_backend_looks(tmp_path: Path) -> None:
    # Packing only looks at the files, so a SavedModel's layout is enough here; serving a
    # real one is the backend's test.
    saved_model = tmp_path / "exported"
    (saved_model / "variables").mkdir(parents=True)
    (saved_model / "saved_model.pb").write_bytes(b"graph")
    (saved_model / "variables" / "variables.index").write_bytes(b"index")
    output = tmp_path / "tf.mar"
    with prepare(ServeRequest(saved_model, output=output)) as deployment:
        assert deployment.startup_models == ["exported=exported.mar"]
    model_dir = tmp_path / "extracted"
    archive.extract_archive(output, model_dir)
    assert (model_dir / "variables" / "variables.index").read_bytes() == b"index"
    manifest = archive.read_manifest(output).to_dict()
    assert detect_backend(model_dir, manifest) == "tensorflow"


@pytest.mark.parametrize("program", ["inference.pdmodel", "inference.json"])
def test_a_paddle_inference_model_is_packed_with_its_parameters(
    tmp_path: Path, program: str
) -> None:
    (tmp_path / program).write_bytes(b"program")
    (tmp_path / "labels.json").write_text("{}")
    with pytest.raises(QuickDeployError, match="found none"):  # no parameters: no model
        servable_in(tmp_path)
    (tmp_path / "inference.pdiparams").write_bytes(b"weights")
    assert servable_in(tmp_path) == tmp_path / program
    with prepare(ServeRequest(tmp_path / program)) as deployment:
        store = Path(deployment.settings.model_store)
        assert deployment.startup_models == ["inference=inference.mar"]
        model_dir = tmp_path / "extracted"
        archive.extract_archive(store / "inference.mar", model_dir)
    assert (model_dir / "inference.pdiparams").read_bytes() == b"weights"
    manifest = archive.read_manifest(model_dir).to_dict()
    assert detect_backend(model_dir, manifest) == "paddle"
    assert archive_inputs(tmp_path / program)["extra_files"] == [
        str(tmp_path / "inference.pdiparams")
    ]


@pytest.mark.parametrize("name", ["notes.txt", "weights.bin", "empty_dir"])
def test_unsupported_path_is_one_line_naming_the_formats(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "empty_dir":
        path.mkdir()
    else:
        path.write_text("not a model")
    result = run_serve(tmp_path, str(path))
    assert result.returncode == 1
    assert result.stderr == f"modelserve: cannot serve {path}: {FORMATS_LINE}\n"


def test_missing_path_and_bad_name(tmp_path: Path) -> None:
    missing = run_serve(tmp_path, str(tmp_path / "absent.onnx"))
    assert missing.returncode == 1
    assert missing.stderr.endswith("absent.onnx: no such file or directory\n")
    model, _ = save_onnx_linear(tmp_path)
    bad_name = run_serve(tmp_path, str(model), "--name", "../up")
    assert bad_name.returncode == 1
    assert "invalid model name '../up'" in bad_name.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--workers", "many"], "argument --workers: expected a whole number, got 'many'"),
        (["--port", "70000"], "argument --port: must be between 0 and 65535, got 70000"),
    ],
)
def test_bad_flags_are_refused(tmp_path: Path, flags: list[str], message: str) -> None:
    result = run_serve(tmp_path, "model.onnx", *flags)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_bad_device_is_refused_naming_the_choices(tmp_path: Path) -> None:
    model, _ = save_onnx_linear(tmp_path)
    result = run_serve(tmp_path, str(model), "--device", "tpu")
    assert result.returncode == 2
    assert "expected cpu, cuda, cuda:N, gpu, gpu:N or original, got 'tpu'" in result.stderr


def test_help_documents_every_flag(tmp_path: Path) -> None:
    result = run_serve(tmp_path, "--help")
    assert result.returncode == 0
    for flag in (
        "PATH",
        "--name",
        "--batch-size",
        "--max-batch-delay",
        "--workers",
        "--device",
        "--port",
        "--management-port",
        "--metrics-port",
        "--output",
    ):
        assert flag in result.stdout
