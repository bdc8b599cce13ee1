"""Several servers of one user side by side: names, ``ps``, ``status NAME``, ``stop NAME``,
clear errors for busy ports and failed background starts, TorchServe's own command line."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from support import free_ports, run_cli


def _cli(*args: str, cwd: Path, runtime: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env={"MODELSERVE_RUNTIME_DIR": str(runtime)})


def _port_flags(ports: list[int]) -> list[str]:
    flags = ("--port", "--management-port", "--metrics-port", "--grpc-port")
    return [item for flag, port in zip(flags, ports, strict=False) for item in (flag, str(port))]


def _all_ports_flags() -> tuple[list[int], list[str]]:
    ports = free_ports(5)
    return ports, [*_port_flags(ports), "--grpc-management-port", str(ports[4])]


def _ps(cwd: Path, runtime: Path) -> dict[str, dict]:
    listed = _cli("ps", "--json", cwd=cwd, runtime=runtime)
    assert listed.returncode == 0, listed.stderr
    return {record["name"]: record for record in json.loads(listed.stdout)}


def _pings(address: str) -> bool:
    try:
        return httpx.get(f"{address}/ping", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_two_servers_run_side_by_side_and_are_told_apart(tmp_path: Path, model_store: Path) -> None:
    runtime = tmp_path / "runtime"
    first_ports, first_flags = _all_ports_flags()
    second_ports, second_flags = _all_ports_flags()
    first_name, second_name = str(first_ports[0]), str(second_ports[0])
    store = ("--model-store", str(model_store))
    try:
        first = _cli(
            "start",
            *store,
            "--models",
            "probe=probe.mar",
            *first_flags,
            cwd=tmp_path,
            runtime=runtime,
        )
        assert first.returncode == 0, first.stderr
        # The start returns once its startup model serves, and says so.
        assert "Ready: probe." in first.stdout
        # The same command with other ports and nothing else: a second server, not a refusal.
        second = _cli("start", *store, *second_flags, cwd=tmp_path, runtime=runtime)
        assert second.returncode == 0, second.stderr
        assert f"instance    {second_name}" in second.stdout

        records = _ps(tmp_path, runtime)
        assert set(records) == {first_name, second_name}
        assert records[first_name]["models"] == ["probe"]
        assert records[second_name]["models"] == []
        for name, ports in ((first_name, first_ports), (second_name, second_ports)):
            addresses = records[name]["addresses"]
            assert addresses["inference"] == f"http://127.0.0.1:{ports[0]}"
            assert addresses["management"] == f"http://127.0.0.1:{ports[1]}"
            assert addresses["metrics"] == f"http://127.0.0.1:{ports[2]}"
            assert addresses["grpc_inference"] == f"grpc://127.0.0.1:{ports[3]}"
            assert addresses["grpc_management"] == f"grpc://127.0.0.1:{ports[4]}"
        # Each has a console log of its own.
        assert (tmp_path / "logs" / f"modelserve-{first_name}.log").is_file()
        assert (tmp_path / "logs" / f"modelserve-{second_name}.log").is_file()
        table = _cli("ps", cwd=tmp_path, runtime=runtime).stdout
        assert first_name in table and second_name in table and "probe" in table

        # With two running, status and stop need a name: they list both and change nothing.
        unnamed = _cli("status", cwd=tmp_path, runtime=runtime)
        assert unnamed.returncode == 1
        assert "name one" in unnamed.stdout and first_name in unnamed.stdout
        refused = _cli("stop", cwd=tmp_path, runtime=runtime)
        assert refused.returncode == 1 and "name one" in refused.stdout
        assert set(_ps(tmp_path, runtime)) == {first_name, second_name}

        # status NAME shows where that server really listens.
        status = _cli("status", second_name, cwd=tmp_path, runtime=runtime)
        assert status.returncode == 0
        assert f"http://127.0.0.1:{second_ports[0]}" in status.stdout
        assert f"127.0.0.1:{first_ports[0]}" not in status.stdout

        stopped = _cli("stop", first_name, cwd=tmp_path, runtime=runtime)
        assert stopped.returncode == 0
        assert f"modelserve {first_name} has stopped." in stopped.stdout
        assert not _pings(f"http://127.0.0.1:{first_ports[0]}")
        assert _pings(f"http://127.0.0.1:{second_ports[0]}")
        # Now only one runs: no name needed.
        assert _cli("status", cwd=tmp_path, runtime=runtime).returncode == 0
    finally:
        _cli("stop", "--all", cwd=tmp_path, runtime=runtime)
    assert _ps(tmp_path, runtime) == {}
    assert "not currently running" in _cli("stop", cwd=tmp_path, runtime=runtime).stdout


def test_a_name_in_use_is_refused_with_what_to_do(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    _, first_flags = _all_ports_flags()
    _, second_flags = _all_ports_flags()
    try:
        first = _cli(
            "start",
            "--instance",
            "blue",
            "--no-grpc",
            *first_flags[:6],
            cwd=tmp_path,
            runtime=runtime,
        )
        assert first.returncode == 0, first.stderr
        assert (
            _ps(tmp_path, runtime)["blue"]["addresses"]
            .keys()
            .isdisjoint({"grpc_inference", "grpc_management"})
        )
        again = _cli("start", "--instance", "blue", *second_flags, cwd=tmp_path, runtime=runtime)
        assert again.returncode == 1
        assert "named 'blue' is already running" in again.stderr
        assert "modelserve stop blue" in again.stderr
        unknown = _cli("stop", "green", cwd=tmp_path, runtime=runtime)
        assert unknown.returncode == 1 and "running: blue" in unknown.stdout
    finally:
        _cli("stop", "--all", cwd=tmp_path, runtime=runtime)


def test_a_failed_background_start_prints_why(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    ports, flags = _all_ports_flags()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[0]))
        busy.listen()
        result = _cli("start", *flags, cwd=tmp_path, runtime=runtime)
    assert result.returncode == 1
    assert "failed to start" in result.stderr
    assert f"cannot listen on inference_address http://127.0.0.1:{ports[0]}" in result.stderr
    assert "--port" in result.stderr  # and how to move it
    assert _ps(tmp_path, runtime) == {}


@pytest.mark.parametrize("plane", ["inference", "management"])
def test_a_busy_grpc_port_is_one_clear_line(tmp_path: Path, plane: str) -> None:
    ports, flags = _all_ports_flags()
    busy_port = ports[3] if plane == "inference" else ports[4]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", busy_port))
        busy.listen()
        result = _cli("start", "--foreground", *flags, cwd=tmp_path, runtime=tmp_path / "rt")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # none of gRPC's C-core noise
    assert lines[0].startswith(
        f"modelserve: cannot listen on grpc_{plane}_port grpc://127.0.0.1:{busy_port}"
    )
    flag = "--grpc-port" if plane == "inference" else "--grpc-management-port"
    assert flag in lines[0] and "--no-grpc" in lines[0]


def test_torchserve_command_line_starts_and_stops(tmp_path: Path, model_store: Path) -> None:
    runtime = tmp_path / "runtime"
    ports = free_ports(3)
    # A TorchServe script sets its ports in config.properties, not with flags.
    (tmp_path / "config.properties").write_text(
        f"inference_address=http://127.0.0.1:{ports[0]}\n"
        f"management_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\n"
        "enable_grpc=false\n"
        "inferance_adress=http://127.0.0.1:1\n"  # a typo the background start must report
    )
    started = _cli(
        "--start", "--ncs", "--model-store", str(model_store), "--models", "probe.mar",
        "--log-config", "log4j2.xml", cwd=tmp_path, runtime=runtime,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert "Model server started." in started.stdout
        assert "ignoring --log-config" in started.stderr
        assert "'inferance_adress'" in started.stderr
        assert "did you mean 'inference_address'" in started.stderr
        answer = httpx.post(f"http://127.0.0.1:{ports[0]}/predictions/probe", json={"x": 1})
        assert answer.status_code == 200
    finally:
        stopped = _cli("--stop", cwd=tmp_path, runtime=runtime)
    assert stopped.returncode == 0
    assert "has stopped" in stopped.stdout
    assert _ps(tmp_path, runtime) == {}
    version = _cli("-v", cwd=tmp_path, runtime=runtime)
    assert version.returncode == 0 and version.stdout.startswith("modelserve ")
