"""Whether the server can serve what it is meant to serve: the answer behind /ping, the
KServe v2 readiness endpoints and gRPC's ServerReady."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class HealthStatus(StrEnum):
    """TorchServe's three states; the values are its /ping strings."""

    HEALTHY = "Healthy"
    PARTIAL = "Partial Healthy"
    UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class Health:
    """The server's state, plus why each model that should serve does not (yet)."""

    status: HealthStatus
    # Model name (or startup entry) -> why it cannot serve: "loading", a load error …
    not_ready: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Every model that should serve can."""
        return self.status is HealthStatus.HEALTHY

    def body(self) -> dict[str, Any]:
        """The /ping JSON: TorchServe's ``{"status"}``, with the reasons only when there are
        any (a healthy server answers exactly as TorchServe does)."""
        # The member itself: a str (StrEnum), and cheaper than its .value on every /ping.
        if not self.not_ready:
            return {"status": self.status}
        return {"status": self.status, "modelsNotReady": self.not_ready}


# Every model serves: the answer of almost every /ping, built once.
ALL_SERVING = Health(HealthStatus.HEALTHY)


def health_of(serving: dict[str, bool], reasons: dict[str, str]) -> Health:
    """Healthy when every expected model serves (or none is expected), Unhealthy when none
    does, else Partial Healthy. ``serving``: model -> serves; ``reasons``: for those that
    do not."""
    states = serving.values()
    if all(states):
        return ALL_SERVING
    status = HealthStatus.PARTIAL if any(states) else HealthStatus.UNHEALTHY
    return Health(status, {name: reasons[name] for name, ok in serving.items() if not ok})
