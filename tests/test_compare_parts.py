"""Parts of the comparison (benchmarks/compare): CPU seconds and memory of a server's whole
process tree, measured on real processes; the medians of rounds the report shows; and the plan
of which server meets which on what."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import psutil
import pytest
from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from compare.resources import cpu_s_per_1k, cpu_seconds, paused, process_tree, rss_mib
from compare.rounds import median_of_rounds
from compare.scenarios import SERVER_ORDER, plan

BURN_S = 0.4  # CPU seconds each grandchild burns
# Three interpreters start (the child and two grandchildren): their own start-up CPU on a
# slow machine stays well below this.
START_UP_ALLOWANCE_S = 1.5
# /proc counts CPU in clock ticks (10 ms), rounded down per process and per user/system.
TICK_ALLOWANCE_S = 0.05
BURNER = """
import sys, time
from pathlib import Path
while time.process_time() < {burn}:
    pass
if len(sys.argv) > 1:
    Path(sys.argv[1]).touch()
    time.sleep(600)
"""
# A server's child: one helper that exits (and is reaped) before the reading, one still alive.
CHILD = """
import subprocess, sys
burner = sys.argv[1]
subprocess.run([sys.executable, "-c", burner], check=True)
subprocess.Popen([sys.executable, "-c", burner, sys.argv[2]]).wait()
"""


def test_cpu_seconds_count_every_descendant_living_or_exited(tmp_path: Path) -> None:
    marker = tmp_path / "burnt"
    burner = BURNER.format(burn=BURN_S)
    child = subprocess.Popen([sys.executable, "-c", CHILD, burner, str(marker)])
    try:
        wait_until(marker.exists)
        used = cpu_seconds(child.pid)
        # Both grandchildren's burns: the exited one through its parent's children times.
        assert 2 * BURN_S - TICK_ALLOWANCE_S <= used <= 2 * BURN_S + START_UP_ALLOWANCE_S, used
        tree = psutil.Process(child.pid).children(recursive=True)
        assert len(tree) == 1  # the living grandchild
        alone = psutil.Process(child.pid).memory_info().rss / 2**20
        assert rss_mib(child.pid) > alone
    finally:
        for process in psutil.Process(child.pid).children(recursive=True):
            process.kill()
        child.wait()


def test_paused_stops_each_tree_for_the_block_and_lets_it_go_on_after(tmp_path: Path) -> None:
    # A parent and a child that would spin for ever: an idle server that is not idle.
    spinner = (
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", spinner + "while True: pass"])
    try:
        tree = wait_until(lambda: len(process_tree(parent.pid)) == 2 and process_tree(parent.pid))

        def statuses() -> set[str]:
            return {process.status() for process in tree}

        with paused([parent.pid, 999_999_999]):  # a pid that is gone is passed over
            wait_until(lambda: statuses() == {psutil.STATUS_STOPPED})
        wait_until(lambda: psutil.STATUS_STOPPED not in statuses())
        with pytest.raises(RuntimeError), paused([parent.pid]):
            wait_until(lambda: statuses() == {psutil.STATUS_STOPPED})
            raise RuntimeError("a failed run")
        wait_until(lambda: psutil.STATUS_STOPPED not in statuses())
    finally:
        for process in psutil.Process(parent.pid).children(recursive=True):
            process.kill()
        parent.kill()
        parent.wait()


def test_cpu_per_1k_requests() -> None:
    assert cpu_s_per_1k(3.0, 6000) == 0.5
    assert cpu_s_per_1k(1.0, 0) is None


def run(server: str, round_index: int, requests_per_s: float, p99_ms: float, cpu: float) -> dict:
    """One wrk run's record as compare_servers.py keeps it."""
    return {
        "server": server,
        "model": "mlp",
        "workers": 1,
        "batch_size": 8,
        "max_batch_delay_ms": 5,
        "concurrency": 64,
        "round": round_index,
        "requests": int(requests_per_s * 10),
        "requests_per_s": requests_per_s,
        "p50_ms": p99_ms / 2,
        "p75_ms": p99_ms / 2,
        "p90_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "max_ms": p99_ms,
        "non_2xx": round_index == 2,
        "errors": round_index == 2,
        "cpu_s_per_1k": cpu,
        "rss_mib": 100.0 * round_index,
        "cdf": [[100.0, p99_ms]],
    }


def test_median_of_rounds_takes_each_number_median_and_adds_up_errors() -> None:
    runs = [
        run("modelserve", 1, 5000, 14.0, 0.2),
        run("torchserve", 1, 1500, 24.0, 0.8),
        run("modelserve", 2, 7000, 12.0, 0.3),
        run("torchserve", 2, 6500, 20.0, 0.2),
        run("modelserve", 3, 6000, 30.0, 0.1),
        run("torchserve", 3, 5400, 22.0, 0.25),
    ]
    ours, theirs = median_of_rounds(runs)
    assert (ours["server"], theirs["server"]) == ("modelserve", "torchserve")
    assert ours["requests_per_s"] == 6000
    assert ours["p99_ms"] == 14.0  # from round 1, not the median-throughput round's 30
    assert ours["cpu_s_per_1k"] == 0.2
    assert ours["rss_mib"] == 200.0
    assert ours["errors"] == 1  # round 2's error is not hidden by the median
    assert ours["requests"] == 180_000
    assert ours["cdf"] == [[100.0, 30.0]]  # the latency distribution of the median round
    assert ours["requests_per_s_rounds"] == [5000, 7000, 6000]
    assert ours["rounds"] == 3 and "round" not in ours
    assert theirs["requests_per_s"] == 5400


def test_every_server_meets_on_the_tiny_mlp_with_one_worker_only() -> None:
    groups = plan(["digits", "mlp"], list(SERVER_ORDER), [1, 2], [1, 64], smoke=False)
    placed = {astuple(group.deployment): group.servers for group in groups}
    assert placed == {
        ("digits", 1, 1, 0): ("modelserve", "torchserve", "mlserver", "litserve"),
        ("digits", 1, 8, 5): ("modelserve", "torchserve", "mlserver", "litserve"),
        ("digits", 2, 1, 0): ("modelserve", "torchserve"),
        ("digits", 2, 8, 5): ("modelserve", "torchserve"),
        ("mlp", 1, 1, 0): SERVER_ORDER,
        ("mlp", 1, 8, 5): SERVER_ORDER,
    }
