"""Which files go into the archive, and under which names."""

from __future__ import annotations

import difflib
import glob
import logging
import os
import sys
from pathlib import Path

from .errors import ArchiverError
from .options import BUILTIN_HANDLERS, LSP_BUILTIN_HANDLERS, ArchiveOptions
from .validation import require_file

log = logging.getLogger(__name__)

MANIFEST_ENTRY = "MAR-INF/MANIFEST.json"
# Directories torch-model-archiver leaves out, besides every directory whose name starts with "."
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "__MACOSX"})
GLOB_CHARACTERS = ("*", "?", "[")


def collect_artifacts(options: ArchiveOptions) -> dict[str, Path]:
    """Map each archive entry name (posix, relative) to the file that provides it.

    The order of inputs is torch-model-archiver's copy order, so when two inputs share a
    name the later one wins, as it does there. The output itself is never packed into itself.
    """
    output = options.output_path().resolve()
    artifacts: dict[str, Path] = {}
    for source in (options.model_file, options.serialized_file):
        if source:
            artifacts[os.path.basename(source)] = Path(source)
    handler = handler_file(options.handler, options.runtime)
    if handler:
        _require_handler_file(options.handler, Path(handler), options.runtime)
        artifacts[os.path.basename(handler)] = Path(handler)
    for spec in options.extra_file_specs():
        artifacts.update(_expand_extra_files(spec, output))
    for source in (options.requirements_file, options.config_file):
        if source:
            artifacts[os.path.basename(source)] = Path(source)
    artifacts.pop(MANIFEST_ENTRY, None)  # the generated manifest always wins
    return artifacts


def handler_file(handler: str, runtime: str) -> str | None:
    """The file a ``--handler`` value asks to copy, or None for a built-in handler.

    ``dir/name``, ``dir/name.py`` and ``dir/name[.py]:fn`` all copy ``dir/name.py``
    (torch-model-archiver 0.12 fails on ``name.py:fn``; accepting it is deliberate).
    """
    if runtime == "LSP":
        if handler in LSP_BUILTIN_HANDLERS:
            return None
        suffix = ".dylib" if sys.platform == "darwin" else ".so"
    else:
        if handler in BUILTIN_HANDLERS:
            return None
        suffix = ".py"
    module, separator, function = handler.rpartition(":")
    path = module if separator and "/" not in function else handler
    return path if path.endswith(suffix) else path + suffix


def _require_handler_file(handler: str, path: Path, runtime: str) -> None:
    """Raise ArchiverError unless the handler file exists; for a mistyped built-in name, the
    message offers the built-in it is closest to."""
    if path.exists():
        require_file("--handler file", path)
        return
    builtins = LSP_BUILTIN_HANDLERS if runtime == "LSP" else BUILTIN_HANDLERS
    # The server's modelserve.suggestions does the same; the archiver must not import the server.
    close = difflib.get_close_matches(handler, builtins, n=1)
    hint = f" (did you mean the built-in handler {close[0]!r}?)" if close else ""
    raise ArchiverError(f"--handler file not found: {path}{hint}")


def _expand_extra_files(spec: str, output: Path) -> dict[str, Path]:
    """Entries for one ``--extra-files`` piece: a file, a glob, or a directory (content-wise)."""
    if any(character in spec for character in GLOB_CHARACTERS):
        matches = sorted(glob.glob(spec))
        if not matches:
            log.warning("--extra-files pattern matched nothing: %s", spec)
    elif os.path.lexists(spec):
        matches = [spec]
    else:
        raise ArchiverError(f"--extra-files entry not found: {spec}")
    entries: dict[str, Path] = {}
    for match in matches:
        path = Path(match)
        if path.resolve() == output:
            continue
        if path.is_file():
            entries[path.name] = path
        elif path.is_dir():
            entries.update(_directory_entries(path, output))
        else:
            raise ArchiverError(f"--extra-files entry is not a file or directory: {path}")
    return entries


def _directory_entries(root: Path, output: Path) -> dict[str, Path]:
    """Every file under ``root`` keyed by its path relative to ``root``.

    Symbolic links are followed, as the reference tool's copy does; a directory already
    visited (a link loop) is not entered twice.
    """
    entries: dict[str, Path] = {}
    visited: set[str] = set()
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        visited.add(os.path.realpath(directory))
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if name not in SKIPPED_DIRECTORIES
            and not name.startswith(".")
            and os.path.realpath(os.path.join(directory, name)) not in visited
            and Path(directory, name).resolve() != output
        )
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_file() and path.resolve() != output:
                entries[path.relative_to(root).as_posix()] = path
    return entries
