"""/ping reflects whether the models that should serve can serve."""

from __future__ import annotations

import httpx
from support import start_server, wait_until


def test_ping_is_unhealthy_until_startup_models_load_then_partial(tmp_path, model_store) -> None:
    server = start_server(tmp_path, model_store, models=["probe=probe.mar", "broken=broken.mar"])
    try:

        def ping() -> httpx.Response:
            return httpx.get(server.inference + "/ping")

        # probe loads, broken never does: the server can serve only part of its models.
        wait_until(lambda: ping().json()["status"] == "Partial Healthy")
        assert ping().status_code == 200

        def broken_description() -> dict:
            return httpx.get(server.management + "/models/broken").json()[0]

        # probe may be ready before broken's first load has failed
        described = wait_until(lambda: (found := broken_description()).get("loadError") and found)
        assert described["loadedAtStartup"] is True
        assert described["loadError"]["type"] == "FileNotFoundError"
        assert "weights.bin" in described["loadError"]["message"]
        assert "Traceback" in described["loadError"]["traceback"]
        httpx.delete(server.management + "/models/broken")
        assert ping().json() == {"status": "Healthy"}
    finally:
        server.stop()
