"""What the streaming test modules share: the streaming example (examples/streaming/tokens.py)
steered through ``fixtures/handlers/gated_tokens.py``, the handler that answers in parts each
way a handler can (``stream_modes.py``), servers that serve them, and reading the pieces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import RunningServer, build_test_archive, start_server, wait_until

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "streaming" / "tokens.py"
PIECE = re.compile(rb"token (\d+) of (\d+)\n")
TIMEOUT = 120


def streaming_store(directory: Path) -> Path:
    """``tokens.mar`` (the example, steerable) and ``modes.mar`` in ``directory``."""
    build_test_archive(directory, "tokens", "gated_tokens.py", extra_files=[EXAMPLE])
    build_test_archive(directory, "modes", "stream_modes.py")
    return directory


def serve_streaming(
    workdir: Path, store: Path, config: dict[str, str] | None = None
) -> RunningServer:
    """A server with ``tokens`` and ``modes``, two workers each, once both serve."""
    server = start_server(
        workdir,
        store,
        ["tokens=tokens.mar", "modes=modes.mar"],
        config={"default_workers_per_model": "2", **(config or {})},
        args=["--ncs"],
    )
    for model in ("tokens", "modes"):
        wait_until(lambda model=model: _ready(server, model) == 2, timeout=TIMEOUT)
    return server


def served(
    factory: pytest.TempPathFactory, name: str, config: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """For a module's ``server`` fixture: a streaming server of its own, stopped at the end."""
    store = streaming_store(factory.mktemp(f"{name}_store"))
    running = serve_streaming(factory.mktemp(name), store, config)
    try:
        yield running
    finally:
        running.stop()


def register_tokens(server: RunningServer, name: str, **settings: int) -> None:
    """The token generator once more, as model ``name`` with its own batching and workers
    (``batch_size``, ``max_batch_delay``, ``initial_workers``)."""
    registered = httpx.post(
        f"{server.management}/models",
        params={"url": "tokens.mar", "model_name": name, "synchronous": "true", **settings},
        timeout=TIMEOUT,
    )
    assert registered.status_code == 200, registered.text


def _ready(server: RunningServer, model: str) -> int:
    answer = httpx.get(f"{server.management}/models/{model}", timeout=TIMEOUT)
    return sum(worker["status"] == "READY" for worker in answer.json()[0]["workers"])


@dataclass
class Gate:
    """A file the gated token generator waits for before a piece."""

    path: Path

    def open(self) -> None:
        self.path.touch()

    def steer(self, hold_at: int) -> dict[str, Any]:
        """The request fields that hold piece ``hold_at`` back until the gate opens."""
        return {"hold_at": hold_at, "gate": str(self.path)}


def numbers(pieces: bytes) -> list[int]:
    """The piece numbers in the token generator's output, in order; every byte must be part of
    a piece."""
    found = PIECE.findall(pieces)
    assert b"".join(b"token %s of %s\n" % pair for pair in found) == pieces, pieces
    return [int(index) for index, _ in found]


def tracebacks(server: RunningServer, since: int = 0) -> list[str]:
    """The tracebacks and error lines the server logged after its first ``since`` characters
    of log (``len(server.log())`` before a test's requests)."""
    logged = server.log()[since:].splitlines()
    return [line for line in logged if "Traceback" in line or " ERROR " in line]
