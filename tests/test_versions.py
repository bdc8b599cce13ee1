"""Two models and two versions of one model served at once."""

from __future__ import annotations

import httpx
from support import RunningServer


def test_two_models_two_versions_and_set_default(server: RunningServer) -> None:
    with httpx.Client(base_url=server.management, timeout=60) as management:
        for url in ("probe.mar", "probe_v2.mar", "other.mar"):
            response = management.post("/models", params={"url": url, "initial_workers": 1})
            assert response.status_code == 200, response.text
        try:
            with httpx.Client(base_url=server.inference, timeout=60) as client:

                def version_of(path: str) -> str:
                    response = client.post(path, json={})
                    assert response.status_code == 200, response.text
                    return response.json()["version"]

                assert version_of("/predictions/probe") == "1.0"
                assert version_of("/predictions/probe/1.0") == "1.0"
                assert version_of("/predictions/probe/2.0") == "2.0"
                assert version_of("/predictions/other") == "1.0"
                pid_v1 = client.post("/predictions/probe/1.0", json={}).json()["pid"]
                pid_v2 = client.post("/predictions/probe/2.0", json={}).json()["pid"]
                assert pid_v1 != pid_v2  # each version has its own worker process

                assert management.put("/models/probe/2.0/set-default").status_code == 200
                assert version_of("/predictions/probe") == "2.0"
                assert version_of("/predictions/probe/1.0") == "1.0"
        finally:
            management.delete("/models/other")
            management.delete("/models/probe/1.0")
            management.delete("/models/probe/2.0")
