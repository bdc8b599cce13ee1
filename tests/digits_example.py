"""The digits example (examples/digits) trained and archived by a test, as `make example` does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"


def train_and_archive(build: Path, store: Path) -> Path:
    """Train the CNN into ``build`` (about 4 s) and write ``digits.mar`` into ``store``."""
    spec = importlib.util.spec_from_file_location("digits_train", DIGITS / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    train.train(build)
    return build_archive(
        ArchiveOptions(
            model_name="digits",
            version="1.0",
            serialized_file=str(build / "digits.pt"),
            handler=str(DIGITS / "handler.py"),
            extra_files=[str(build / "index_to_name.json")],
            export_path=store,
        )
    )
