"""``modelserve start`` (background), ``status`` and ``stop`` as a user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from support import free_ports, run_cli


def _modelserve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


def test_start_status_stop(tmp_path: Path, model_store: Path) -> None:
    ports = free_ports(5)
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{ports[0]}\n"
        f"management_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\n"
        f"grpc_inference_port={ports[3]}\n"
        f"grpc_management_port={ports[4]}\n"
        f"runtime_dir={tmp_path / 'runtime'}\n"
    )
    common = ("--ts-config", str(config))
    started = _modelserve(
        "start",
        *common,
        "--model-store",
        str(model_store),
        "--models",
        "probe=probe.mar",
        cwd=tmp_path,
    )
    try:
        assert started.returncode == 0, started.stderr
        assert "Model server started." in started.stdout
        assert (tmp_path / "logs" / f"modelserve-{ports[0]}.log").exists()
        # The start returned once its startup model was ready.
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/ping").json() == {"status": "Healthy"}

        status = _modelserve("status", *common, cwd=tmp_path)
        assert status.returncode == 0
        assert "running" in status.stdout and str(ports[0]) in status.stdout

        again = _modelserve("start", *common, "--model-store", str(model_store), cwd=tmp_path)
        assert again.returncode == 1
        assert "already running" in again.stderr
        assert f"modelserve stop {ports[0]}" in again.stderr
    finally:
        stopped = _modelserve("stop", *common, cwd=tmp_path)
    assert stopped.returncode == 0
    assert f"modelserve {ports[0]} has stopped." in stopped.stdout
    assert _modelserve("status", *common, cwd=tmp_path).returncode == 1
    assert "not currently running" in _modelserve("stop", *common, cwd=tmp_path).stdout


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.properties"
    config.write_text("job_queue_size=zero\n")
    result = _modelserve("start", "--foreground", "--ts-config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("modelserve: job_queue_size")
    missing_store = _modelserve("start", "--model-store", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing_store.returncode == 1
    assert "is not a directory" in missing_store.stderr


def test_busy_port_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.properties"
        free = free_ports(2)
        config.write_text(
            f"inference_address=http://127.0.0.1:{port}\n"
            f"management_address=http://127.0.0.1:{free[0]}\n"
            f"metrics_address=http://127.0.0.1:{free[1]}\n"
            "enable_grpc=false\n"
            f"runtime_dir={tmp_path / 'runtime'}\n"
        )
        result = _modelserve("start", "--foreground", "--ts-config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on inference_address http://127.0.0.1:{port}" in result.stderr
    # One line that says how to move the plane.
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--port" in result.stderr and "MODELSERVE_INFERENCE_ADDRESS" in result.stderr
