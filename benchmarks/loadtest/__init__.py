"""Load tests of modelserve with wrk, compared against the handlers called in-process."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
DIGITS_DIR = REPO_ROOT / "examples" / "digits"

# How every benchmarked model is served: one worker, batches of up to 8, a 5 ms batching ceiling.
WORKERS = 1
BATCH_SIZE = 8
MAX_BATCH_DELAY_MS = 5
