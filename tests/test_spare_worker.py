"""The spare worker: a worker process that has done its imports and waits for the next model.

A registration hands it the model instead of spawning a new process (the describe output
shows the spare's pid as the worker's), and a new spare takes its place. ``spare_worker=false``
(or ``--no-spare-worker``, or ``MODELSERVE_SPARE_WORKER=false``) keeps none. Spares never
outlive their server, however it ends.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from support import (
    RunningServer,
    process_alive,
    ready_spare_pids,
    ready_workers,
    start_server,
    wait_until,
    waiting_spares,
    worker_processes,
)

# Importing torch in a fresh process takes seconds on a busy test machine.
SPARE_READY_TIMEOUT_S = 120


def wait_for_spare(server: RunningServer, other_than: tuple[int, ...] = ()) -> int:
    """The pid of a spare the server reports ready, other than ``other_than``."""

    def new_spares() -> list[int]:
        return [pid for pid in ready_spare_pids(server) if pid not in other_than]

    return wait_until(new_spares, timeout=SPARE_READY_TIMEOUT_S)[-1]


def register_probe(server: RunningServer, name: str = "probe") -> int:
    """Register probe.mar (as ``name``) with one worker and wait for it; its worker's pid."""
    response = httpx.post(
        f"{server.management}/models",
        params={
            "url": "probe.mar",
            "model_name": name,
            "initial_workers": 1,
            "synchronous": "true",
        },
        timeout=180,
    )
    assert response.status_code == 200, response.text
    (worker,) = httpx.get(f"{server.management}/models/{name}").json()[0]["workers"]
    return worker["pid"]


def test_a_registration_gets_the_spare_and_a_new_spare_takes_its_place(
    tmp_path: Path, model_store: Path
) -> None:
    server = start_server(tmp_path / "server", model_store)
    try:
        spare = wait_for_spare(server)
        assert [process.pid for process in waiting_spares(server)] == [spare]
        assert register_probe(server) == spare
        assert "probe:1.0 worker 9000 is the spare worker" in server.log()
        answer = httpx.post(f"{server.inference}/predictions/probe", json={"echo": 1})
        assert answer.status_code == 200, answer.text
        replacement = wait_for_spare(server, other_than=(spare,))
        assert [process.pid for process in waiting_spares(server)] == [replacement]
        assert [process.pid for process in worker_processes(server)] == [spare]
        # The next model gets the replacement.
        assert register_probe(server, "second") == replacement
    finally:
        code = server.stop()
    assert code == 0
    wait_until(lambda: not any(process_alive(pid) for pid in (spare, replacement)), timeout=30)


@pytest.mark.parametrize(
    ("config", "args", "env"),
    [
        ({"spare_worker": "false"}, [], {}),
        ({}, ["--no-spare-worker"], {}),
        ({}, [], {"MODELSERVE_SPARE_WORKER": "false"}),
    ],
    ids=["config.properties", "flag", "environment"],
)
def test_with_the_spare_worker_off_workers_start_from_scratch(
    tmp_path: Path,
    model_store: Path,
    config: dict[str, str],
    args: list[str],
    env: dict[str, str],
) -> None:
    server = start_server(tmp_path / "server", model_store, config=config, args=args, env=env)
    try:
        wait_until(lambda: "spare worker off (spare_worker=false)" in server.log())
        worker = register_probe(server)
        assert waiting_spares(server) == []
        assert [process.pid for process in worker_processes(server)] == [worker]
        assert "spare worker" not in server.log().replace("spare worker off", "")
    finally:
        assert server.stop() == 0


def test_a_spare_still_importing_is_left_alone(tmp_path: Path, model_store: Path) -> None:
    # A worker that needs none of the spare's imports must not wait for them.
    server = start_server(tmp_path / "server", model_store)
    (spare,) = wait_until(lambda: waiting_spares(server), interval=0.01)
    spare.send_signal(signal.SIGSTOP)  # held mid-import: it has not said it is ready
    try:
        if ready_spare_pids(server):
            pytest.skip("the spare finished its imports before it could be held")
        assert register_probe(server) != spare.pid
        assert waiting_spares(server) == [spare]
        spare.send_signal(signal.SIGCONT)
        assert wait_for_spare(server) == spare.pid
        assert register_probe(server, "second") == spare.pid
    finally:
        spare.send_signal(signal.SIGCONT)
        assert server.stop() == 0


def test_a_crashed_worker_is_restarted_without_the_spare(tmp_path: Path, model_store: Path) -> None:
    # A worker crashing in a loop must not keep new spares importing torch.
    server = start_server(tmp_path / "server", model_store)
    try:
        first = register_probe(server, "probe")
        spare = wait_for_spare(server, other_than=(first,))
        os.kill(first, signal.SIGKILL)

        def restarted() -> list[int]:
            pids = [process.pid for process in worker_processes(server)]
            return [pid for pid in pids if pid != first and ready_workers(server, "probe")]

        (worker,) = wait_until(restarted)
        assert worker != spare
        assert [process.pid for process in waiting_spares(server)] == [spare]
    finally:
        assert server.stop() == 0


def test_a_spare_that_dies_is_replaced(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path / "server", model_store)
    try:
        spare = wait_for_spare(server)
        os.kill(spare, signal.SIGKILL)
        replacement = wait_for_spare(server, other_than=(spare,))
        assert f"spare worker (pid {spare}) exited with -9; starting another" in server.log()
        assert register_probe(server) == replacement
    finally:
        assert server.stop() == 0


def test_a_spare_dies_with_a_killed_server(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path / "server", model_store)
    try:
        spare = wait_for_spare(server)
    finally:
        # No chance to stop its workers: the spare sees its stdin close and exits.
        server.process.kill()
        server.process.wait()
    wait_until(lambda: not process_alive(spare), timeout=30)
