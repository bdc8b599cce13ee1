"""Safe defaults: a server reachable from the network requires keys, and never offers model
control without them."""

from __future__ import annotations

from pathlib import Path

import httpx
from support import free_ports, start_server


def public_management(port: int) -> dict[str, str]:
    return {"management_address": f"http://0.0.0.0:{port}"}


def test_public_server_turns_token_authorization_on(tmp_path: Path, model_store: Path) -> None:
    (port,) = free_ports(1)
    running = start_server(tmp_path, model_store, config=public_management(port))
    try:
        assert (tmp_path / "key_file.json").is_file()
        assert httpx.get(running.management + "/models").status_code == 401
        assert httpx.get(running.inference + "/ping").status_code == 401
    finally:
        running.stop()


def test_public_server_without_keys_refuses_model_control(
    tmp_path: Path, model_store: Path
) -> None:
    (port,) = free_ports(1)
    running = start_server(tmp_path, model_store, config=public_management(port), args=["--dt"])
    try:
        register = httpx.post(running.management + "/models?url=probe.mar&initial_workers=1")
        assert register.status_code == 405
        message = register.json()["message"]
        assert "without token authorization" in message and "0.0.0.0" in message
        unregister = httpx.delete(running.management + "/models/probe")
        assert unregister.status_code == 405
        assert httpx.get(running.management + "/models").json()["models"] == []
        assert "refused: the management API listens on http://0.0.0.0" in running.log()
        # Reading the state and inference stay available.
        assert httpx.get(running.inference + "/ping").status_code == 200
    finally:
        running.stop()


def test_public_server_with_a_token_allows_model_control(tmp_path: Path, model_store: Path) -> None:
    (port,) = free_ports(1)
    token = "a-long-enough-static-token-0123"
    running = start_server(
        tmp_path, model_store, config={**public_management(port), "auth_token": token}
    )
    try:
        register = httpx.post(
            running.management + "/models?url=probe.mar&initial_workers=0",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert register.status_code == 200, register.text
    finally:
        running.stop()


def test_model_api_can_be_switched_off_locally(tmp_path: Path, model_store: Path) -> None:
    running = start_server(tmp_path, model_store, config={"enable_model_api": "false"})
    try:
        register = httpx.post(running.management + "/models?url=probe.mar")
        assert register.status_code == 405
        assert "enable_model_api=false" in register.json()["message"]
    finally:
        running.stop()
