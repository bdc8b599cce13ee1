"""Token authorization: TorchServe 0.12's key file and token API, and a static token."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import RunningServer, start_server, wait_until

AUTH_FAILED = (
    "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_of(server: RunningServer) -> dict:
    return json.loads((server.log_path.parent / "key_file.json").read_text())


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"code": 401, "type": "InvalidKeyException", "message": AUTH_FAILED}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    """A loopback server with token authorization forced on (TorchServe's default)."""
    running = start_server(
        tmp_path_factory.mktemp("keyed"),
        model_store,
        models=["probe=probe.mar"],
        config={"disable_token_authorization": "false"},
    )
    yield running
    running.stop()


def test_key_file_is_private_and_shaped_like_torchserves(keyed: RunningServer) -> None:
    key_file = keyed.log_path.parent / "key_file.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys = keys_of(keyed)
    assert set(keys) == {"management", "inference", "API"}
    assert set(keys["management"]) == {"key", "expiration time"}
    assert keys["management"]["expiration time"].endswith("Z")
    assert set(keys["API"]) == {"key"}
    assert len({keys[kind]["key"] for kind in keys}) == 3
    assert keys["inference"]["key"] not in keyed.log()  # never logged


def test_inference_needs_the_inference_key(keyed: RunningServer) -> None:
    keys = keys_of(keyed)
    url = keyed.inference + "/predictions/probe"
    assert_refused(httpx.post(url, content=b"{}"))
    assert_refused(httpx.post(url, content=b"{}", headers=bearer("wrong")))
    assert_refused(httpx.post(url, content=b"{}", headers=bearer(keys["management"]["key"])))
    assert_refused(httpx.get(keyed.inference + "/ping"))
    assert_refused(httpx.post(url, content=b"{}", headers={"Authorization": "Basic abc"}))
    good = bearer(keys["inference"]["key"])
    assert httpx.post(url, content=b"{}", headers=good).status_code == 200
    assert httpx.get(keyed.inference + "/ping", headers=good).json() == {"status": "Healthy"}


def test_management_needs_the_management_key(keyed: RunningServer) -> None:
    keys = keys_of(keyed)
    assert_refused(httpx.get(keyed.management + "/models"))
    assert_refused(httpx.get(keyed.management + "/models", headers=bearer(keys["API"]["key"])))
    response = httpx.get(keyed.management + "/models", headers=bearer(keys["management"]["key"]))
    assert response.status_code == 200
    assert [model["modelName"] for model in response.json()["models"]] == ["probe"]


def test_api_description_and_metrics_stay_open(keyed: RunningServer) -> None:
    for plane in (keyed.inference, keyed.management):
        assert httpx.request("OPTIONS", plane + "/").json()["openapi"].startswith("3.")
        assert httpx.get(plane + "/api-description").status_code == 200
    assert httpx.get(keyed.metrics + "/metrics").status_code == 200


def test_token_api_regenerates_a_key_and_retires_the_old_one(keyed: RunningServer) -> None:
    before = keys_of(keyed)
    api_key = bearer(before["API"]["key"])
    assert_refused(httpx.get(keyed.management + "/token?type=inference"))
    assert_refused(
        httpx.get(
            keyed.management + "/token?type=inference", headers=bearer(before["management"]["key"])
        )
    )
    bad_type = httpx.get(keyed.management + "/token?type=API", headers=api_key)
    assert bad_type.status_code == 400
    assert "type=management or type=inference" in bad_type.json()["message"]

    response = httpx.get(keyed.management + "/token?type=inference", headers=api_key)
    assert response.status_code == 200
    new_key = response.json()["inference"]["key"]
    assert new_key != before["inference"]["key"]
    assert keys_of(keyed)["inference"]["key"] == new_key
    assert keys_of(keyed)["management"] == before["management"]  # the other key is kept
    ping = keyed.inference + "/ping"
    assert_refused(httpx.get(ping, headers=bearer(before["inference"]["key"])))
    assert httpx.get(ping, headers=bearer(new_key)).status_code == 200


def test_key_file_is_removed_at_shutdown(tmp_path: Path, model_store: Path) -> None:
    running = start_server(tmp_path, model_store, config={"disable_token_authorization": "false"})
    assert (tmp_path / "key_file.json").is_file()
    assert running.stop() == 0
    assert not (tmp_path / "key_file.json").exists()


def test_keys_expire(tmp_path: Path, model_store: Path) -> None:
    running = start_server(
        tmp_path,
        model_store,
        config={"disable_token_authorization": "false", "token_expiration_min": "0.05"},
    )
    try:
        api_key = bearer(keys_of(running)["API"]["key"])
        fresh = httpx.get(running.management + "/token?type=inference", headers=api_key)
        key = bearer(fresh.json()["inference"]["key"])
        ping = running.inference + "/ping"
        assert httpx.get(ping, headers=key).status_code == 200
        wait_until(lambda: httpx.get(ping, headers=key).status_code == 401, timeout=30)
        # The API key never expires, so a new inference key can still be had.
        again = httpx.get(running.management + "/token?type=inference", headers=api_key)
        assert httpx.get(ping, headers=bearer(again.json()["inference"]["key"])).status_code == 200
    finally:
        running.stop()


STATIC_TOKEN = "s3cret-token-for-containers-0123456789"


@pytest.mark.parametrize("source", ["env", "secret_file"])
def test_static_token(tmp_path: Path, model_store: Path, source: str) -> None:
    secret = tmp_path / "token"
    secret.write_text(STATIC_TOKEN + "\n")
    running = start_server(
        tmp_path / "server",
        model_store,
        env={"MODELSERVE_AUTH_TOKEN": STATIC_TOKEN} if source == "env" else None,
        config={"auth_token_file": str(secret)} if source == "secret_file" else None,
    )
    try:
        assert not (tmp_path / "server" / "key_file.json").exists()
        token = bearer(STATIC_TOKEN)
        assert_refused(httpx.get(running.inference + "/ping"))
        assert_refused(httpx.get(running.management + "/models", headers=bearer("x" * 40)))
        assert httpx.get(running.inference + "/ping", headers=token).status_code == 200
        registered = httpx.post(
            running.management + "/models?url=probe.mar&initial_workers=1", headers=token
        )
        assert registered.status_code == 200, registered.text
        prediction = httpx.post(
            running.inference + "/predictions/probe", content=b"{}", headers=token
        )
        assert prediction.status_code == 200
        regenerate = httpx.get(running.management + "/token?type=inference", headers=token)
        assert regenerate.status_code == 400
        assert "static auth_token" in regenerate.json()["message"]
    finally:
        running.stop()


def test_short_static_token_is_a_startup_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelserve.cli", "start", "--foreground"],
        cwd=tmp_path,
        # The test session's private TMPDIR: the records of this user's own servers stay out.
        env={
            "MODELSERVE_AUTH_TOKEN": "short",
            "PATH": "/usr/bin:/bin",
            "TMPDIR": tempfile.gettempdir(),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "at least 16 characters" in result.stderr


def test_loopback_server_needs_no_key(server: RunningServer) -> None:
    """The README's plain curl keeps working on a local server."""
    assert httpx.get(server.inference + "/ping").status_code == 200
    assert httpx.get(server.management + "/models").status_code == 200
    assert not (server.log_path.parent / "key_file.json").exists()
    assert "token authorization is off" in server.log()
