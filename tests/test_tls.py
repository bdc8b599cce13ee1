"""HTTPS on the planes with TorchServe's certificate_file / private_key_file keys."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme
from support import free_ports, start_server, wait_until


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (ca, cert chain, key)."""
    directory = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    ca, chain, key = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    issued.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return ca, chain, key


def https_config(ports: list[int], chain: Path, key: Path) -> dict[str, str]:
    return {
        "inference_address": f"https://127.0.0.1:{ports[0]}",
        "management_address": f"https://127.0.0.1:{ports[1]}",
        "certificate_file": str(chain),
        "private_key_file": str(key),
    }


def test_planes_serve_https(
    tmp_path: Path, model_store: Path, certificate: tuple[Path, Path, Path]
) -> None:
    ca, chain, key = certificate
    ports = free_ports(2)
    running = start_server(
        tmp_path, model_store, models=["probe=probe.mar"], config=https_config(ports, chain, key)
    )
    try:
        trusted = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(verify=trusted) as client:
            ping = running.inference + "/ping"
            wait_until(lambda: client.get(ping).json() == {"status": "Healthy"})
            prediction = client.post(running.inference + "/predictions/probe", content=b"{}")
            assert prediction.status_code == 200
            models = client.get(running.management + "/models").json()["models"]
            assert [model["modelName"] for model in models] == ["probe"]
        # Without trusting the CA the handshake fails: it really is the generated certificate.
        with pytest.raises(httpx.ConnectError):
            httpx.get(running.inference + "/ping")
        # Plain HTTP to the TLS port gets no answer from the planes.
        plain = f"http://127.0.0.1:{ports[0]}/ping"
        with pytest.raises(httpx.HTTPError):
            httpx.get(plain).raise_for_status()
        # The metrics plane kept its http:// address.
        assert httpx.get(running.metrics + "/metrics").status_code == 200
    finally:
        running.stop()


def start_failure(tmp_path: Path, properties: dict[str, str]) -> str:
    config = tmp_path / "config.properties"
    # No gRPC: its default ports may be taken by another server on this host.
    properties = {"enable_grpc": "false", **properties}
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelserve.cli",
            "start",
            "--foreground",
            "--ts-config",
            str(config),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    return result.stderr


def test_https_without_certificate_is_a_startup_error(tmp_path: Path) -> None:
    ports = free_ports(3)
    stderr = start_failure(
        tmp_path,
        {
            "inference_address": f"https://127.0.0.1:{ports[0]}",
            "management_address": f"http://127.0.0.1:{ports[1]}",
            "metrics_address": f"http://127.0.0.1:{ports[2]}",
        },
    )
    assert "inference_address is https: set certificate_file" in stderr


def test_unusable_key_is_a_startup_error(
    tmp_path: Path, certificate: tuple[Path, Path, Path]
) -> None:
    _, chain, _ = certificate
    not_a_key = tmp_path / "garbage.key"
    not_a_key.write_text("not a key\n")
    ports = free_ports(3)
    config = https_config(ports, chain, not_a_key)
    config["metrics_address"] = f"http://127.0.0.1:{ports[2]}"
    stderr = start_failure(tmp_path, config)
    assert "inference TLS:" in stderr
