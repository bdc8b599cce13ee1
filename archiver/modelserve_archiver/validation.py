"""Checks on the inputs that fail fast, before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ArchiverError
from .options import ARCHIVE_FORMATS, RUNTIMES, ArchiveOptions

try:
    import yaml
except ImportError:  # stdlib-only installs skip the check; the server validates at load time
    yaml = None

MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.]*")

# flag → option attribute, for every single-file input
FILE_FLAGS: tuple[tuple[str, str], ...] = (
    ("--model-file", "model_file"),
    ("--serialized-file", "serialized_file"),
    ("--requirements-file", "requirements_file"),
    ("--config-file", "config_file"),
)


def validate_options(options: ArchiveOptions) -> None:
    """Raise ArchiverError for the first problem found in ``options``."""
    if not MODEL_NAME_PATTERN.fullmatch(options.model_name):
        raise ArchiverError(
            f"invalid --model-name {options.model_name!r}: "
            f"must match ^{MODEL_NAME_PATTERN.pattern}$"
        )
    if options.archive_format not in ARCHIVE_FORMATS:
        raise ArchiverError(
            f"unknown --archive-format {options.archive_format!r}: "
            f"choose one of {', '.join(ARCHIVE_FORMATS)}"
        )
    if options.runtime not in RUNTIMES:
        raise ArchiverError(
            f"unknown --runtime {options.runtime!r}: choose one of {', '.join(RUNTIMES)}"
        )
    for flag, attribute in FILE_FLAGS:
        value = getattr(options, attribute)
        if value:
            require_file(flag, Path(value))
    if options.config_file:
        check_config_file(Path(options.config_file))
    export_path = Path(options.export_path)
    if export_path.exists() and not export_path.is_dir():
        raise ArchiverError(f"--export-path is not a directory: {export_path}")
    output = options.output_path()
    if (output.exists() or output.is_symlink()) and not options.force:
        raise ArchiverError(f"output already exists (pass -f/--force to overwrite): {output}")


def require_file(flag: str, path: Path) -> None:
    """Raise ArchiverError unless ``path`` is an existing regular file."""
    if not path.exists():
        raise ArchiverError(f"{flag} not found: {path}")
    if not path.is_file():
        raise ArchiverError(f"{flag} is not a file: {path}")


def check_config_file(path: Path) -> None:
    """Raise ArchiverError unless the model-config yaml is a mapping (or empty).

    Without PyYAML the file is accepted unparsed.
    """
    if yaml is None:
        return
    try:
        document = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # scanner/parser errors carry `problem`; undecodable bytes carry `reason`
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "parse error"
        raise ArchiverError(f"--config-file is not valid YAML ({problem}{where}): {path}") from exc
    # An empty file is an empty configuration, which the server accepts too.
    if document is not None and not isinstance(document, dict):
        kind = type(document).__name__
        raise ArchiverError(f"--config-file is not a YAML mapping (found a {kind}): {path}")
