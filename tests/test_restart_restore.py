"""Snapshots: a killed server comes back with exactly the models it had; --ncs opts out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from support import (
    RunningServer,
    process_alive,
    ready_workers,
    start_server,
    wait_until,
)

from modelserve.engine import snapshot

SNAPSHOT_NAME = re.compile(r"^\d{17}-snapshot\.cfg$")
# Worker fields that name a process, not a setting: a restored worker is a new process.
VOLATILE_WORKER_FIELDS = ("id", "pid", "startTime", "memoryUsage")


def _snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("*-snapshot.cfg")) if directory.is_dir() else []


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, response.text
    return response


def _stable(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Describe output without what changes when the same settings get new processes."""
    stable = []
    for entry in entries:
        workers = [
            {key: value for key, value in worker.items() if key not in VOLATILE_WORKER_FIELDS}
            for worker in entry["workers"]
        ]
        stable.append({**entry, "workers": sorted(workers, key=repr)})
    return stable


def _state(server: RunningServer, models: list[str]) -> dict[str, Any]:
    """Everything the management API says about ``models``, volatile worker fields removed."""
    management = server.management
    return {
        "list": _ok(httpx.get(management + "/models", timeout=30)).json(),
        "defaults": {
            model: _stable(_ok(httpx.get(f"{management}/models/{model}", timeout=30)).json())
            for model in models
        },
        "all": {
            model: _stable(_ok(httpx.get(f"{management}/models/{model}/all", timeout=30)).json())
            for model in models
        },
    }


def _worker_pids(server: RunningServer, models: list[str]) -> list[int]:
    return [
        worker["pid"]
        for model in models
        for entry in _ok(httpx.get(f"{server.management}/models/{model}/all", timeout=30)).json()
        for worker in entry["workers"]
    ]


def test_killed_server_restarts_with_the_same_models(tmp_path: Path, model_store: Path) -> None:
    snapshot_dir = tmp_path / "snapshots"
    runtime_dir = tmp_path / "runtime"
    config = {"snapshot_dir": str(snapshot_dir), "runtime_dir": str(runtime_dir)}
    first = start_server(tmp_path / "first", model_store, config=config)
    second: RunningServer | None = None
    try:
        management = first.management + "/models"
        for params in (
            {"url": "probe.mar", "batch_size": 4, "max_batch_delay": 50, "response_timeout": 30},
            {
                "url": "probe_v2.mar",
                "batch_size": 2,
                "max_batch_delay": 20,
                "response_timeout": 45,
                "startup_timeout": 90,
                "initial_workers": 2,
            },
            {"url": "other.mar", "batch_size": 8, "max_batch_delay": 10, "response_timeout": 60},
            {"url": "files.mar", "initial_workers": 0, "batch_size": 3},
        ):
            _ok(httpx.post(management, params={"initial_workers": 1, **params}, timeout=60))
        _ok(
            httpx.put(
                f"{management}/other",
                params={"min_worker": 1, "max_worker": 3, "synchronous": "true"},
                timeout=60,
            )
        )
        _ok(httpx.put(f"{management}/probe/2.0/set-default", timeout=30))
        models = ["files", "other", "probe"]
        before = _state(first, models)
        assert before["defaults"]["probe"][0]["modelVersion"] == "2.0"
        assert [entry["maxWorkers"] for entry in before["all"]["other"]] == [3]
        pids = _worker_pids(first, models)
        assert len(pids) == 4

        old_runtime = runtime_dir / str(first.process.pid)
        assert (old_runtime / "workers.sock").exists()
        first.process.kill()
        first.process.wait(10)
        # No one tells the orphaned workers: each notices its parent is gone.
        wait_until(lambda: not any(process_alive(pid) for pid in pids), timeout=5)
        assert old_runtime.exists(), "a SIGKILLed server cannot have cleaned up after itself"

        second = start_server(tmp_path / "second", model_store, config=config)
        restored = second

        def all_ready() -> bool:
            return (
                ready_workers(restored, "probe", "1.0") == 1
                and ready_workers(restored, "probe", "2.0") == 2
                and ready_workers(restored, "other") == 1
            )

        wait_until(all_ready, timeout=30)
        after = _state(second, models)
        for key in ("list", "defaults"):
            assert after[key] == before[key], key
        for model in models:
            for old, new in zip(before["all"][model], after["all"][model], strict=True):
                assert new.keys() == old.keys(), (model, old["modelVersion"])
                for field in old:
                    assert new[field] == old[field], (model, old["modelVersion"], field)
        assert after == before

        assert not old_runtime.exists(), "the dead server's runtime directory was left behind"
        assert list(runtime_dir.glob("*/workers.sock")) == [
            runtime_dir / str(second.process.pid) / "workers.sock"
        ]
        answer = _ok(httpx.post(second.inference + "/predictions/probe", json={}, timeout=30))
        assert answer.json()["version"] == "2.0"
        new_pids = _worker_pids(second, models)
        assert not set(new_pids) & set(pids)
    finally:
        if first.process.poll() is None:
            first.stop()
        if second is not None:
            assert second.stop() == 0


def test_ncs_neither_writes_nor_restores_and_a_restore_keeps_startup_models(
    tmp_path: Path, model_store: Path
) -> None:
    snapshot_dir = tmp_path / "snapshots"
    config = {"snapshot_dir": str(snapshot_dir)}
    saved = start_server(tmp_path / "saved", model_store, config=config)
    try:
        _ok(
            httpx.post(
                saved.management + "/models",
                params={"url": "other.mar", "initial_workers": 1},
                timeout=60,
            )
        )
    finally:
        assert saved.stop() == 0
    written = _snapshots(snapshot_dir)
    assert written, "registering a model wrote no snapshot"

    ncs = start_server(
        tmp_path / "ncs", model_store, models=["probe=probe.mar"], config=config, args=["--ncs"]
    )
    try:
        wait_until(lambda: ready_workers(ncs, "probe") >= 1, timeout=30)
        listed = _ok(httpx.get(ncs.management + "/models", timeout=30)).json()["models"]
        assert [model["modelName"] for model in listed] == ["probe"]
        _ok(
            httpx.post(
                ncs.management + "/models",
                params={"url": "files.mar", "initial_workers": 0},
                timeout=60,
            )
        )
        _ok(httpx.delete(ncs.management + "/models/files", timeout=60))
    finally:
        assert ncs.stop() == 0
    assert _snapshots(snapshot_dir) == written, "--ncs wrote a snapshot"

    restored = start_server(
        tmp_path / "restored", model_store, models=["probe=probe.mar"], config=config
    )
    try:
        listed = _ok(httpx.get(restored.management + "/models", timeout=30)).json()["models"]
        # The snapshot's model, and the one the command line names (unlike TorchServe, which
        # ignores --models when it restores a snapshot).
        assert [model["modelName"] for model in listed] == ["other", "probe"]
        [other] = _ok(httpx.get(restored.management + "/models/other", timeout=30)).json()
        assert (other["minWorkers"], other["maxWorkers"]) == (1, 1), other
        wait_until(lambda: ready_workers(restored, "other") == 1, timeout=15)
    finally:
        assert restored.stop() == 0


def test_each_successful_change_writes_one_snapshot_and_a_failed_one_none(
    tmp_path: Path, model_store: Path
) -> None:
    workdir = tmp_path / "server"
    server = start_server(workdir, model_store)
    # The default, under the working directory: one folder per server, named after its
    # inference port.
    snapshot_dir = workdir / "logs" / "config" / server.inference.rsplit(":", 1)[1]
    management = server.management + "/models"
    try:
        written = len(_snapshots(snapshot_dir))

        def changed(response: httpx.Response) -> list[snapshot.VersionSnapshot]:
            """A successful call: exactly one new snapshot, returned parsed."""
            nonlocal written
            _ok(response)
            written += 1
            wait_until(lambda: len(_snapshots(snapshot_dir)) >= written, timeout=5)
            files = _snapshots(snapshot_dir)
            assert len(files) == written, [path.name for path in files]
            assert SNAPSHOT_NAME.match(files[-1].name), files[-1].name
            return snapshot.read_snapshot(files[-1])

        def refused(response: httpx.Response, status: int) -> None:
            assert response.status_code == status, response.text
            assert len(_snapshots(snapshot_dir)) == written, f"a {status} wrote a snapshot"

        [v1] = changed(httpx.post(management, params={"url": "probe.mar", "batch_size": 2}))
        assert (v1.name, v1.version, v1.mar_name, v1.default) == ("probe", "1.0", "probe.mar", True)
        knobs = v1.settings
        assert (knobs.batch_size, knobs.min_workers, knobs.max_workers) == (2, 0, 0)
        refused(httpx.post(management, params={"url": "probe.mar"}), 409)
        refused(httpx.post(management, params={"url": "missing.mar"}), 404)
        refused(httpx.post(management, params={"url": "other.mar", "batch_size": "x"}), 400)

        versions = changed(
            httpx.post(management, params={"url": "probe_v2.mar", "initial_workers": 1}, timeout=60)
        )
        assert sorted(version.version for version in versions) == ["1.0", "2.0"]
        # The snapshot of a registration records the workers it started.
        v2 = next(version for version in versions if version.version == "2.0")
        assert (v2.settings.min_workers, v2.settings.max_workers, v2.default) == (1, 1, False)
        versions = changed(
            httpx.put(
                f"{management}/probe/1.0",
                params={"min_worker": 1, "max_worker": 2, "synchronous": "true"},
                timeout=60,
            )
        )
        scaled = next(version for version in versions if version.version == "1.0")
        assert (scaled.settings.min_workers, scaled.settings.max_workers) == (1, 2)
        inverted = {"min_worker": 3, "max_worker": 1}
        refused(httpx.put(f"{management}/probe/1.0", params=inverted), 400)
        refused(httpx.put(f"{management}/nobody", params={"min_worker": 1}), 404)

        versions = changed(httpx.put(f"{management}/probe/2.0/set-default"))
        assert {version.version: version.default for version in versions} == {
            "1.0": False,
            "2.0": True,
        }
        refused(httpx.put(f"{management}/probe/9.9/set-default"), 404)
        refused(httpx.delete(f"{management}/probe/2.0"), 403)  # the default, others remain
        refused(httpx.delete(f"{management}/nobody"), 404)

        versions = changed(httpx.delete(f"{management}/probe/1.0", timeout=60))
        assert [(version.version, version.default) for version in versions] == [("2.0", True)]
        versions = changed(httpx.delete(f"{management}/probe", timeout=60))
        assert versions == []
    finally:
        assert server.stop() == 0
