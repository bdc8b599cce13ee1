"""The command-line flags ``modelserve start`` and ``serve`` share: where the server listens,
its name and device, and the argparse type for bounded whole numbers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

DEVICE_HELP = (
    "where every worker runs: cpu, cuda (spread over the visible GPUs) or cuda:N; "
    "default: the GPUs when there are any, else the CPU"
)
INSTANCE_HELP = (
    "this server's name for 'modelserve ps', 'status NAME' and 'stop NAME' "
    "(default: its inference port, e.g. 8080)"
)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def add_listen_flags(command: argparse.ArgumentParser, own_port: bool = False) -> None:
    """Where the server listens, and its name: shared by start and serve (``own_port``: the
    command adds a ``--port`` of its own)."""
    port = whole_number(0, 65535)
    for flag, key, default in (
        ("--port", "inference_address", 8080),
        ("--management-port", "management_address", 8081),
        ("--metrics-port", "metrics_address", 8082),
        ("--grpc-port", "grpc_inference_port", 7070),
        ("--grpc-management-port", "grpc_management_port", 7071),
    ):
        if own_port and flag == "--port":
            continue
        command.add_argument(
            flag,
            type=port,
            metavar="PORT",
            help=f"over the configured {key} (default {default}; 0 = any free port)",
        )
    command.add_argument(
        "--no-grpc", action="store_true", help="serve no gRPC ports (enable_grpc=false)"
    )
    command.add_argument("--instance", metavar="NAME", help=INSTANCE_HELP)
