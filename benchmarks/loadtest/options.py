"""The command-line options the load scripts share: run length, concurrency, output, smoke."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest import BENCH_DIR

DEFAULT_DURATION_S = 10
DEFAULT_CONCURRENCY = [1, 16, 64]
SMOKE_DURATION_S = 1
SMOKE_CONCURRENCY = [1, 4]


def parse_load_args(description: str, argv: list[str] | None) -> argparse.Namespace:
    """``--duration``, ``--concurrency``, ``--out`` and ``--smoke``; ``--smoke`` changes the
    defaults, explicit flags still win."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=int, metavar="S", help="seconds per run (default 10)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", metavar="C", help="connections (default 1 16 64)"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument(
        "--smoke", action="store_true", help="a quick check: 1 s runs at concurrency 1 and 4"
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = SMOKE_DURATION_S if args.smoke else DEFAULT_DURATION_S
    if args.concurrency is None:
        args.concurrency = SMOKE_CONCURRENCY if args.smoke else DEFAULT_CONCURRENCY
    if args.duration < 1 or min(args.concurrency) < 1:
        parser.error("--duration and --concurrency must be at least 1")
    return args
