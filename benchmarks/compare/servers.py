"""The protocol every benchmarked server implements.

The orchestrator (``compare_servers.py``) only talks to servers through
:class:`ServerTarget`, so adding a competitor means writing one class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # models.py imports torch lazily; keep this module light
    from compare.models import ModelFiles


@dataclass(frozen=True)
class Deployment:
    """How one model is served during a scenario."""

    model: str  # "noop" | "digits" | "resnet"
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
    orchestrator uses it when present (see :func:`request_body`).
    """

    name: str  # "modelserve", "torchserve", "mlserver", "litserve"

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


def register_params(archive: str, files: ModelFiles, deployment: Deployment) -> dict[str, str]:
    """TorchServe's register query (``POST /models``), which modelserve answers the same way:
    the deployment's workers and batching, waiting until the workers are up."""
    return {
        "url": archive,
        "model_name": files.name,
        "initial_workers": str(deployment.workers),
        "batch_size": str(deployment.batch_size),
        "max_batch_delay": str(deployment.max_batch_delay_ms),
        "synchronous": "true",
    }
