"""grpst's command line on modelserve (issue 20): ``modelserve torch_serve | tf_serve |
trt_serve`` and ``serve`` with grpst's flags, their mistakes refused before anything starts,
what the flags set (batching, limits, the archive's handler options, custom op libraries),
and ``modelserve logs`` following a background server as ``grpst logs`` does.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml
from framework_models import save_onnx_linear, save_torchscript
from grps_support import environment, grps_serve
from support import free_ports, run_cli, wait_until

from modelserve.quick_deploy import MODEL_CONFIG_FILE

# A shared library no worker loads of its own accord: a custom op library's stand-in.
LIBRARY = glob.glob(f"{sysconfig.get_config_var('DESTSHARED')}/_sqlite3*.so")[0]
X = [[0.5, -1.0, 2.0, 4.0]]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    save_torchscript(directory)
    save_onnx_linear(directory)
    return directory


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["torch_serve", "linear.onnx"], 1, "torch_serve serves TorchScript files (.pt, .pth)"),
        (["tf_serve", "tiny.pt"], 1, "tf_serve serves TensorFlow SavedModel directories"),
        (["trt_serve", "tiny.pt"], 1, "trt_serve serves TensorRT engines"),
        (["torch_serve", "tiny.pt", "--interface_framework", "http+brpc"], 1, "brpc is not"),
        (["torch_serve", "tiny.pt", "--port", "7080"], 1, "needs --port HTTP_PORT,GRPC_PORT"),
        (
            ["torch_serve", "tiny.pt", "--interface_framework", "http", "--port", "7080,7081"],
            1,
            "--interface_framework http takes one port",
        ),
        (["torch_serve", "tiny.pt", "--port", "7080,7080"], 2, "the HTTP and gRPC ports must"),
        (["torch_serve", "tiny.pt", "--port", "a,b"], 2, "expected a whole number"),
        (["torch_serve", "tiny.pt", "--gpu_devices_idx", "0,x"], 2, "expected GPU indexes"),
        (["torch_serve", "tiny.pt", "--gpu_mem_limit_mib", "0"], 1, "at least 1, or -1"),
        (["torch_serve", "tiny.pt", "--batching_type", "static"], 2, "invalid choice: 'static'"),
        (["torch_serve", "tiny.pt", "--device", "tpu"], 2, "expected cpu, cuda, cuda:N, gpu"),
        (
            ["torch_serve", "tiny.pt", "--max_concurrency", "50", "--max_connections", "10"],
            1,
            "max_connections (10) must be at least max_concurrency (50)",
        ),
        # As grpst: trt_serve has no memory limit, tf_serve no input device.
        (["trt_serve", "x.engine", "--gpu_mem_limit_mib", "5"], 2, "unrecognized arguments"),
        (["tf_serve", "saved", "--inp_device", "cpu"], 2, "unrecognized arguments"),
        (["serve", "tiny.pt", "--interface_framework", "http+brpc"], 1, "brpc is not served"),
    ],
)
def test_grpst_flag_mistakes_are_refused_before_anything_starts(
    models: Path, tmp_path: Path, arguments: list[str], status: int, message: str
) -> None:
    env = environment(tmp_path)
    result = run_cli(*arguments, cwd=models, env=env)
    assert result.returncode == status, result.stdout + result.stderr
    assert message in result.stderr
    assert run_cli("ps", cwd=models, env=env).stdout.strip() == "No modelserve is running."


def test_grpst_flags_pack_handler_options_and_load_custom_op_libraries(
    models: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "served.mar"
    flags = [
        "--customized_op_paths",
        LIBRARY,
        "--output_path",
        str(archive),
        "--gpu_mem_limit_mib",
        "512",
        "--gpu_devices_idx",
        "1",
        "--gpu_mem_gc_enable",
    ]
    server = grps_serve(tmp_path, "torch_serve", models / "tiny.pt", *flags)
    try:
        (pid,) = server.worker_pids("tiny")
        maps = Path(f"/proc/{pid}/maps").read_text()
        answer = server.predict({"ndarray": X})
    finally:
        server.stop()
    assert LIBRARY in maps
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(archive) as packed:
        config = yaml.safe_load(packed.read(MODEL_CONFIG_FILE))
    assert config == {
        "handler": {
            "custom_op_libraries": [LIBRARY],
            "gpu_memory_limit_mib": 512,
            "gpu_memory_devices": [1],
            "gpu_memory_gc_interval_s": 60,
        }
    }


def test_a_custom_op_library_that_does_not_load_is_named(models: Path, tmp_path: Path) -> None:
    missing = tmp_path / "ops.so"
    http, grpc = free_ports(2)
    env = environment(tmp_path)
    arguments = ["torch_serve", str(models / "tiny.pt"), "--port", f"{http},{grpc}"]
    result = run_cli(
        *arguments, "--customized_op_paths", str(missing), "--no_logging", cwd=tmp_path, env=env
    )
    run_cli("stop", "my_grps", cwd=tmp_path, env=env)
    assert "Not serving" in result.stdout, result.stdout + result.stderr
    assert f"custom op library: Could not load this library: {missing}" in result.stdout


def test_serve_takes_grpst_flags(models: Path, tmp_path: Path) -> None:
    http, grpc, management, metrics = free_ports(4)
    command = [sys.executable, "-m", "modelserve.cli", "serve", str(models / "tiny.pt")]
    command += ["--port", f"{http},{grpc}", "--management-port", str(management)]
    command += ["--metrics-port", str(metrics), "--batching_type", "dynamic"]
    command += ["--max_batch_size", "8", "--batch_timeout_us", "1500", "--max_concurrency", "3"]
    log = tmp_path / "serve.log"
    command += ["--grpc-management-port", "0"]
    with log.open("wb") as output:
        env = {**os.environ, **environment(tmp_path)}
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
        )
    try:
        wait_until(lambda: "Ready: tiny." in log.read_text() or process.poll() is not None, 120)
        description = httpx.get(f"http://127.0.0.1:{management}/models/tiny").json()[0]
        metadata = httpx.get(f"http://127.0.0.1:{http}/grps/v1/metadata/server").json()
    finally:
        process.terminate()
        process.wait(60)
    assert (description["batchSize"], description["maxBatchDelay"]) == (8, 2)
    assert "max_concurrency: 3\n" in metadata["str_data"]
    assert f"grpc://127.0.0.1:{grpc} (inference)" in log.read_text()


def test_logs_follows_a_background_server_until_it_stops(models: Path, tmp_path: Path) -> None:
    server = grps_serve(tmp_path, "torch_serve", models / "tiny.pt")
    command = [sys.executable, "-m", "modelserve.cli", "logs", server.name]
    follower = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **server.environment},
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().startswith("Following ")
        server.stop()
        output = follower.communicate(timeout=60)[0]
    finally:
        follower.kill()
    assert follower.returncode == 0
    assert "shutting down" in output
    assert output.rstrip().endswith(f"modelserve {server.name} has stopped.")
