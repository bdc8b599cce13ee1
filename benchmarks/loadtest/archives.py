"""The two benchmarked models: a no-op handler and the digits example, packed as archives."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

from loadtest import BENCH_DIR, DIGITS_DIR

NOOP_HANDLER = BENCH_DIR / "handlers" / "noop.py"
DIGITS_HANDLER = DIGITS_DIR / "handler.py"
# Artifacts of `examples/digits/build.py`; reused when present, since training is deterministic.
DIGITS_BUILD = DIGITS_DIR / "build"
DIGITS_ARTIFACTS = ("digits.pt", "index_to_name.json")


def load_module(path: Path, name: str) -> ModuleType:
    """Import a script file that is not part of any package (the examples, the handlers)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits_artifacts(scratch: Path) -> Path:
    """A directory holding a trained ``digits.pt`` and ``index_to_name.json``.

    The example's own build directory when it is complete, otherwise a fresh training run
    (a few seconds on a CPU) into ``scratch``.
    """
    if all((DIGITS_BUILD / name).is_file() for name in DIGITS_ARTIFACTS):
        return DIGITS_BUILD
    scratch.mkdir(parents=True, exist_ok=True)
    load_module(DIGITS_DIR / "train.py", "digits_train").train(scratch)
    return scratch


def build_noop_archive(store: Path) -> Path:
    """Pack ``handlers/noop.py`` as ``noop.mar`` in ``store``."""
    options = ArchiveOptions(
        model_name="noop",
        version="1.0",
        handler=str(NOOP_HANDLER),
        export_path=store,
        force=True,
    )
    return build_archive(options)


def build_digits_archive(store: Path, artifacts: Path) -> Path:
    """Pack the digits example as ``digits.mar`` in ``store``."""
    options = ArchiveOptions(
        model_name="digits",
        version="1.0",
        serialized_file=str(artifacts / "digits.pt"),
        handler=str(DIGITS_HANDLER),
        extra_files=[str(artifacts / "index_to_name.json")],
        export_path=store,
        force=True,
    )
    return build_archive(options)
