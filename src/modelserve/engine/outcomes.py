"""What a management call answers when it succeeds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Outcome:
    """A management call's HTTP status and status message."""

    status: int
    message: str
    # The model a registration registered.
    model_name: str | None = None
