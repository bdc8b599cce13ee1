"""``modelserve container``, the image's entry point, outside a container: which command line it
runs for each model layout (KServe's TorchServe layout, archives, one model file), KServe's
``torchserve --start …`` args, ``PORT``, and the container defaults that yield to the config
file and the environment; then a real run from a model directory on a free ``PORT``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from framework_models import SAMPLE, save_tf_saved_model
from support import free_ports, wait_until

from modelserve.config import ConfigError
from modelserve.container import CONTAINER_DEFAULTS, plan

ALL_DEFAULTS = {f"MODELSERVE_{key.upper()}" for key in CONTAINER_DEFAULTS}


def _kserve_layout(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "model-store").mkdir()
    config = root / "config" / "config.properties"
    config.write_text("inference_address=http://0.0.0.0:8085\nenable_metrics_api=true\n")
    return config


def test_kserve_torchserve_layout_starts_with_its_config(tmp_path: Path) -> None:
    config = _kserve_layout(tmp_path)
    chosen = plan(tmp_path, None, [], {})
    assert chosen.argv == [
        "start",
        "--ts-config",
        str(config),
        "--model-store",
        str(tmp_path / "model-store"),
        "--foreground",
    ]
    # The config sets inference_address: the image's default yields to it.
    assert set(chosen.environment) == ALL_DEFAULTS - {"MODELSERVE_INFERENCE_ADDRESS"}


def test_kserve_torchserve_runtime_args_run_in_the_foreground_on_port(tmp_path: Path) -> None:
    config = _kserve_layout(tmp_path)
    args = [
        "torchserve",
        "--start",
        f"--model-store={tmp_path / 'model-store'}",
        f"--ts-config={config}",
    ]
    chosen = plan(Path("/nonexistent"), None, args, {"PORT": "8080"})
    assert chosen.argv == [*args[1:], "--foreground", "--port", "8080"]
    assert "MODELSERVE_INFERENCE_ADDRESS" not in chosen.environment


def test_archives_are_all_served_and_a_given_port_wins_over_port(tmp_path: Path) -> None:
    (tmp_path / "a.mar").write_bytes(b"")
    assert plan(tmp_path, None, [], {}).argv == [
        "start",
        "--model-store",
        str(tmp_path),
        "--models",
        "all",
        "--foreground",
    ]
    own = plan(tmp_path, None, ["modelserve", "start", "--port=9000"], {"PORT": "8080"})
    assert own.argv == ["start", "--port=9000", "--foreground"]


@pytest.mark.parametrize("flag", ["--http-port=8000", "--rest_api_port=8501", "--rest-api-port=1"])
def test_tritons_and_tf_servings_http_port_flags_win_over_port(flag: str) -> None:
    # Appending --port would move Triton's HTTP port, or be TF Serving's gRPC port.
    command = ["modelserve", "start", "--model_name=m", "--model_base_path=/m", flag]
    assert plan(Path("/nonexistent"), None, command, {"PORT": "8080"}).argv == [
        *command[1:],
        "--foreground",
    ]


def test_one_model_file_is_served_zero_code_by_name(tmp_path: Path) -> None:
    model = tmp_path / "1" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"")
    (tmp_path / "README.txt").write_text("not a model")
    chosen = plan(tmp_path, "digits", [], {"PORT": "8080", "MODELSERVE_OPEN_HEALTH_CHECKS": "0"})
    assert chosen.argv == ["serve", str(model), "--name", "digits", "--port", "8080"]
    # A variable the user set is never overridden by the image's default.
    assert set(chosen.environment) == ALL_DEFAULTS - {"MODELSERVE_OPEN_HEALTH_CHECKS"}


def test_a_saved_model_directory_is_served_itself(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert plan(tmp_path, None, [], {}).argv == ["serve", str(tmp_path)]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["README.txt"], r"exactly one model file .* found none"),
        (["a.onnx", "b.pt"], r"found .*a\.onnx, .*b\.pt"),
    ],
)
def test_an_ambiguous_or_empty_model_dir_is_one_clear_error(
    tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ConfigError, match=message):
        plan(tmp_path, None, [], {})


def test_tf_servings_model_name_and_base_path_serve_when_the_model_dir_is_empty(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "mnt"
    empty.mkdir()
    (tmp_path / "models" / "half_plus_two").mkdir(parents=True)
    environ = {"MODEL_NAME": "half_plus_two", "MODEL_BASE_PATH": str(tmp_path / "models")}
    chosen = plan(empty, None, [], {**environ, "PORT": "8501"})
    base = str(tmp_path / "models" / "half_plus_two")
    assert chosen.argv == [
        *("start", "--model-name", "half_plus_two", "--model-base-path", base),
        *("--foreground", "--port", "8501"),
    ]
    # MODEL_NAME defaults to TF Serving's "model"; an absent model dir counts as empty.
    (tmp_path / "models" / "model").mkdir()
    default = plan(tmp_path / "absent", None, [], {"MODEL_BASE_PATH": str(tmp_path / "models")})
    assert default.argv[1:5] == [
        *("--model-name", "model", "--model-base-path", str(tmp_path / "models" / "model")),
    ]
    # What is mounted at the model dir (KServe's) comes first.
    (empty / "a.mar").write_bytes(b"")
    assert plan(empty, None, [], environ).argv[:3] == ["start", "--model-store", str(empty)]


def test_nothing_to_serve_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"at .*absent .*or a TF Serving model at /models/model "):
        plan(tmp_path / "absent", None, [], {})
    environ = {"MODEL_NAME": "m", "MODEL_BASE_PATH": str(tmp_path)}
    with pytest.raises(ConfigError, match=f"TF Serving model at {tmp_path / 'm'} "):
        plan(tmp_path / "absent", None, [], environ)


def test_a_missing_model_dir_and_an_unknown_command_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing to serve: mount a model at .*absent"):
        plan(tmp_path / "absent", None, [], {})
    with pytest.raises(ConfigError, match="expected torchserve … or modelserve …"):
        plan(tmp_path, None, ["tritonserver", "--model-store=/models"], {})


def test_the_container_command_serves_a_model_dir_on_port(
    tmp_path: Path, model_store: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "probe.mar").write_bytes((model_store / "probe.mar").read_bytes())
    port, management, metrics, grpc, grpc_management = free_ports(5)
    environment = {
        **os.environ,
        "PORT": str(port),
        # Loopback ports of the test's own instead of the image's 0.0.0.0:8080-8082 defaults.
        "MODELSERVE_INFERENCE_ADDRESS": "http://127.0.0.1:1",
        "MODELSERVE_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{management}",
        "MODELSERVE_METRICS_ADDRESS": f"http://127.0.0.1:{metrics}",
        "MODELSERVE_GRPC_INFERENCE_ADDRESS": "127.0.0.1",
        "MODELSERVE_GRPC_MANAGEMENT_ADDRESS": "127.0.0.1",
        "MODELSERVE_GRPC_INFERENCE_PORT": str(grpc),
        "MODELSERVE_GRPC_MANAGEMENT_PORT": str(grpc_management),
        "MODELSERVE_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelserve.cli", "container", "--model-dir", str(models)],
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Ready: probe" in log.read_text() or process.poll() is not None, 90)
        assert process.poll() is None, log.read_text()
        answer = httpx.post(f"http://127.0.0.1:{port}/predictions/probe", json={"echo": 7})
        assert answer.status_code == 200 and answer.json()["echo"] == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_the_container_serves_tf_servings_model_name_from_its_base_path(
    tmp_path: Path,
) -> None:
    saved, reference = save_tf_saved_model(tmp_path, [SAMPLE])
    base = tmp_path / "models" / "tiny"
    base.mkdir(parents=True)
    saved.rename(base / "1")
    port, management, metrics, grpc, grpc_management = free_ports(5)
    environment = {
        **os.environ,
        "MODEL_NAME": "tiny",
        "MODEL_BASE_PATH": str(tmp_path / "models"),
        "PORT": str(port),
        "MODELSERVE_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{management}",
        "MODELSERVE_METRICS_ADDRESS": f"http://127.0.0.1:{metrics}",
        "MODELSERVE_INFERENCE_ADDRESS": "http://127.0.0.1:1",
        "MODELSERVE_GRPC_INFERENCE_ADDRESS": "127.0.0.1",
        "MODELSERVE_GRPC_MANAGEMENT_ADDRESS": "127.0.0.1",
        "MODELSERVE_GRPC_INFERENCE_PORT": str(grpc),
        "MODELSERVE_GRPC_MANAGEMENT_PORT": str(grpc_management),
        "MODELSERVE_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    command = [sys.executable, "-m", "modelserve.cli", "container"]
    command += ["--model-dir", str(tmp_path / "mnt")]
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/tiny"

        def served() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(url).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(served, 120)
        # A SavedModel's first call traces its graph: seconds on a busy machine.
        answer = httpx.post(f"{url}:predict", json={"instances": SAMPLE.tolist()}, timeout=120)
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["predictions"], reference(SAMPLE), atol=1e-5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
