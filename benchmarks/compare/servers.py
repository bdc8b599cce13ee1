"""The protocol every benchmarked server implements.

The orchestrator (``compare_servers.py``) only talks to servers through
:class:`ServerTarget`, so adding a competitor means writing one class.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

if TYPE_CHECKING:  # models.py imports torch lazily; keep this module light
    from compare.models import ModelFiles


# How long a register call, and then the first answer after it, may take.
REGISTER_TIMEOUT_S = 300
FIRST_ANSWER_DEADLINE_S = 60
POLL_S = 0.1


@dataclass(frozen=True)
class Deployment:
    """How one model is served during a scenario."""

    model: str  # "noop" | "digits" | "mlp" | "resnet"
    workers: int
    batch_size: int  # 1 = unbatched
    max_batch_delay_ms: int  # 5 when batched


@dataclass(frozen=True)
class Endpoint:
    """Where the load generator sends requests for a deployed model."""

    url: str  # POST here with the model's body
    # register call -> model answers (or process start -> ready for servers
    # without a register API)
    register_s: float


class NotSupported(Exception):
    """This server cannot serve that model/deployment in the benchmark."""


class ServerTarget(Protocol):
    """One server under test.

    A target may also define ``request_body(self, files) -> tuple[bytes, str]``
    to send a different body/content type than ``files.body`` /
    ``files.content_type`` (e.g. MLServer's V2 inference JSON); the
    orchestrator uses it when present (see :func:`request_body`). A target whose server does
    not survive being stopped while another one is loaded sets ``pausable = False`` (see
    :func:`compare.resources.paused`).
    """

    name: str  # "modelserve", "torchserve", "triton", "rayserve", "bentoml", "mlserver", ...

    def install(self, cache: Path) -> None:
        """Create this server's venv under ``cache``; idempotent."""
        ...

    def start(self, workdir: Path) -> float:
        """Start the server process(es); return cold start seconds.

        Cold start is process start -> health OK. Servers that load models only
        at start may do the real start in :meth:`deploy` and return 0.0 here.
        """
        ...

    def deploy(self, deployment: Deployment, files: ModelFiles) -> Endpoint:
        """Serve ``files`` as ``deployment`` and return where to send load."""
        ...

    def undeploy(self, model: str) -> None:
        """Remove a model deployed with :meth:`deploy`."""
        ...

    def root_pid(self) -> int:
        """The process every process of the server descends from, for CPU and memory of
        the whole tree (see :mod:`compare.resources`)."""
        ...

    def memory_mb(self) -> dict[str, float]:
        """``{"frontend": RSS MiB, "workers": summed RSS MiB of workers}``."""
        ...

    def stop(self) -> None:
        """Stop every process this target started; safe to call twice."""
        ...


def request_body(target: ServerTarget, files: ModelFiles) -> tuple[bytes, str]:
    """The body and content type ``target`` expects for ``files``' model."""
    override = getattr(target, "request_body", None)
    if override is not None:
        return override(files)
    return files.body, files.content_type


def register_and_answer(
    management: str,
    inference: str,
    archive: str,
    files: ModelFiles,
    deployment: Deployment,
    fail: Callable[[str], Exception],
    *,
    retry_unavailable: bool = False,
) -> Endpoint:
    """Register ``archive`` through TorchServe's management API (modelserve answers it the
    same way) and wait for the first right answer; ``register_s`` covers both, so it includes
    worker start, handler import and model load.

    ``retry_unavailable`` retries answers of 503 until FIRST_ANSWER_DEADLINE_S, for a server
    whose synchronous register returns before its workers take requests (TorchServe).
    """
    params = {
        "url": archive,
        "model_name": files.name,
        "initial_workers": str(deployment.workers),
        "batch_size": str(deployment.batch_size),
        "max_batch_delay": str(deployment.max_batch_delay_ms),
        "synchronous": "true",
    }
    url = f"{inference}/predictions/{files.name}"
    started = time.monotonic()
    response = httpx.post(f"{management}/models", params=params, timeout=REGISTER_TIMEOUT_S)
    if response.status_code != 200:
        raise fail(f"registering {archive}: HTTP {response.status_code} {response.text}")
    deadline = time.monotonic() + FIRST_ANSWER_DEADLINE_S
    headers = {"Content-Type": files.content_type}
    while True:
        answer = httpx.post(
            url, content=files.body, headers=headers, timeout=FIRST_ANSWER_DEADLINE_S
        )
        if not (retry_unavailable and answer.status_code == 503) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    register_s = time.monotonic() - started
    if answer.status_code != 200 or not files.answer_ok(answer.content):
        raise fail(f"{files.name}: HTTP {answer.status_code} {answer.content[:200]!r}")
    return Endpoint(url, register_s)
