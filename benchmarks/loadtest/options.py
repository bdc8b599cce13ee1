"""The command-line options the load scripts share: run length, concurrency, output, smoke."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from loadtest import BENCH_DIR

DEFAULT_DURATION_S = 10
DEFAULT_CONCURRENCY = (1, 16, 64)
SMOKE_DURATION_S = 1
SMOKE_CONCURRENCY = [1, 4]


def parse_load_args(
    description: str,
    argv: list[str] | None,
    *,
    duration_s: int = DEFAULT_DURATION_S,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """``--duration``, ``--concurrency``, ``--out`` and ``--smoke``, plus what ``add_arguments``
    adds; ``--smoke`` changes the defaults, explicit flags still win."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--duration", type=int, metavar="S", help=f"seconds per run (default {duration_s})"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        metavar="C",
        help=f"connections (default {' '.join(map(str, concurrency))})",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument(
        "--smoke", action="store_true", help="a quick check: 1 s runs at concurrency 1 and 4"
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = SMOKE_DURATION_S if args.smoke else duration_s
    if args.concurrency is None:
        args.concurrency = SMOKE_CONCURRENCY if args.smoke else list(concurrency)
    if args.duration < 1 or min(args.concurrency) < 1:
        parser.error("--duration and --concurrency must be at least 1")
    if hasattr(args, "rounds_default") and args.rounds is None:
        args.rounds = 1 if args.smoke else args.rounds_default
    if getattr(args, "rounds", 1) < 1:
        parser.error("--rounds must be at least 1")
    return args


def add_rounds_option(parser: argparse.ArgumentParser, default: int) -> None:
    """``--rounds``: how many times every run is repeated (the report gives medians);
    :func:`parse_load_args` makes it ``default``, 1 with ``--smoke``, when not given."""
    parser.add_argument(
        "--rounds", type=int, help=f"rounds of every run (default {default}, smoke 1)"
    )
    parser.set_defaults(rounds_default=default)
