"""build_archive: the whole archiving run, callable from Python without a subprocess."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TextIO

from .artifacts import collect_artifacts
from .errors import ArchiverError
from .manifest import build_manifest, render_manifest
from .options import ArchiveOptions
from .packaging import write_output
from .progress import SilentProgress, progress_for
from .validation import validate_options
from .version import ARCHIVER_VERSION

log = logging.getLogger(__name__)


def build_archive(options: ArchiveOptions, *, progress_stream: TextIO | None = None) -> Path:
    """Build the archive described by ``options`` and return the path written.

    A progress bar is drawn on ``progress_stream`` when it is given and is a terminal.
    Raises ArchiverError for bad inputs or an existing output without ``force``; OSError
    for failures of the filesystem while writing.
    """
    validate_options(options)
    artifacts = collect_artifacts(options)
    manifest = render_manifest(build_manifest(options, ARCHIVER_VERSION, datetime.now()))
    output = options.output_path()
    try:
        Path(options.export_path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiverError(
            f"cannot create --export-path ({exc.strerror}): {options.export_path}"
        ) from exc
    if output.exists() or output.is_symlink():
        log.warning("overwriting %s", output)
    total = sum(path.stat().st_size for path in artifacts.values()) + len(manifest)
    progress = (
        SilentProgress()
        if progress_stream is None
        else progress_for(f"Packing {output.name}", total, progress_stream)
    )
    try:
        write_output(
            options.archive_format, output, options.model_name, artifacts, manifest, progress
        )
    finally:
        progress.close()
    return output
