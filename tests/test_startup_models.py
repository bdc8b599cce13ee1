"""Models loaded at start: ``--models all``, per-model settings from the ``models`` key."""

from __future__ import annotations

import httpx
from support import start_server, wait_until


def test_models_all_with_per_model_settings(tmp_path, model_store) -> None:
    config = {
        "default_workers_per_model": "1",
        "models": '{"other": {"1.0": {"minWorkers": 2, "maxWorkers": 2, "batchSize": 4}}}',
    }
    server = start_server(tmp_path, model_store, models=["all"], config=config)
    try:
        listing = httpx.get(server.management + "/models").json()["models"]
        assert [entry["modelName"] for entry in listing] == ["broken", "files", "other", "probe"]
        versions = httpx.get(server.management + "/models/probe/all").json()
        assert sorted(entry["modelVersion"] for entry in versions) == ["1.0", "2.0"]
        assert all(entry["loadedAtStartup"] for entry in versions)
        other = httpx.get(server.management + "/models/other").json()[0]
        assert (other["minWorkers"], other["maxWorkers"], other["batchSize"]) == (2, 2, 4)

        def other_ready() -> bool:
            workers = httpx.get(server.management + "/models/other").json()[0]["workers"]
            return [worker["status"] for worker in workers] == ["READY", "READY"]

        wait_until(other_ready)
        probe = httpx.get(server.management + "/models/probe").json()[0]
        assert probe["minWorkers"] == 1  # default_workers_per_model
    finally:
        server.stop()
