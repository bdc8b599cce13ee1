"""What a server's processes cost: CPU seconds and resident memory of the whole process tree;
and keeping the servers not under load from taking CPU while another one is measured.

A server is every process under the one the benchmark started (TorchServe's JVM and Python
workers, Triton's ``tritonserver`` and Python backend stubs, Ray's GCS, raylet and actors), so
both are summed over the root and all its descendants, read from /proc through psutil.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import psutil

MIB = 1024 * 1024


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every descendant of it alive now."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by ``pid``'s process tree.

    The times of descendants that already exited count too: the kernel adds them to the
    parent that reaps them (``children_user``/``children_system``), so the difference of two
    readings covers helpers that lived only between them.
    """
    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:  # exited after the listing; its parent has its times
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid``'s process tree, summed, in MiB (pages shared between the
    processes count once per process, as ``ps`` shows them)."""
    total = 0
    for process in process_tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:  # a helper that just exited holds no memory
            continue
    return total / MIB


def cpu_s_per_1k(cpu_s: float, requests: int) -> float | None:
    """CPU seconds per 1,000 answered requests; None when no request was answered."""
    return cpu_s / requests * 1000 if requests else None


@contextmanager
def paused(pids: Iterable[int]) -> Iterator[None]:
    """Stop every process of each of ``pids``' trees (SIGSTOP) for the ``with`` block, and let
    them go on after it (SIGCONT), whatever happens inside.

    Idle servers are not idle: PyTriton's proxy polls and a Ray cluster keeps its GCS, raylet,
    agents and controller busy, about a quarter of a core together on the 2-core VM, taken from
    whichever server is being loaded. Stopped, they take nothing; their clocks jump on resume,
    which none of their health checks minds for a run's few seconds.
    """
    stopped: list[psutil.Process] = []
    try:
        for pid in pids:
            with suppress(psutil.NoSuchProcess):
                for process in process_tree(pid):
                    with suppress(psutil.NoSuchProcess):
                        process.send_signal(signal.SIGSTOP)
                        stopped.append(process)
        yield
    finally:
        for process in reversed(stopped):
            with suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)
