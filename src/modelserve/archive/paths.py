"""Checks that keep archive entry names and link targets inside the archive."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

from .errors import UnsafeArchiveError

EntryPath = tuple[str, ...]


def entry_path(name: str, source: Path) -> EntryPath:
    """The components of entry ``name`` relative to the archive root.

    Backslashes count as separators (archives made on Windows use them) so that no
    spelling of ".." slips through. An empty result means the root itself ("./").
    Raises UnsafeArchiveError for absolute names, "..", and NUL bytes.
    """
    if "\x00" in name:
        raise UnsafeArchiveError(f"entry {name!r} in {source} has a NUL byte in its name")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/"):
        raise UnsafeArchiveError(f"entry {name!r} in {source} has an absolute path")
    parts = tuple(part for part in normalized.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"entry {name!r} in {source} climbs out of the archive with '..'")
    return parts


def check_symlink_target(path: EntryPath, target: str, name: str, source: Path) -> None:
    """Raise UnsafeArchiveError unless a symlink at ``path`` to ``target`` stays inside.

    This is the lexical check, made before anything is written; chains of links are
    checked again on disk once every entry is in place.
    """
    if not target or "\x00" in target:
        raise UnsafeArchiveError(f"symlink {name!r} in {source} has an empty or invalid target")
    if target.startswith("/"):
        raise UnsafeArchiveError(
            f"symlink {name!r} in {source} points to the absolute path {target!r}"
        )
    resolved = posixpath.normpath(posixpath.join(*path[:-1], target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"symlink {name!r} in {source} points outside it: {target!r}")


def single_top_directory(paths: Iterable[EntryPath]) -> str | None:
    """The one top-level directory everything sits under, when that is the layout.

    tgz archives put everything under ``<name>/``, and SageMaker-style directories
    wrap the model in one sub-directory; TorchServe looks inside such a directory.
    A MAR-INF at the root means the root is the model.
    """
    tops: set[str] = set()
    nested = False
    for path in paths:
        tops.add(path[0])
        nested = nested or len(path) > 1
        if len(tops) > 1:
            return None
    if len(tops) == 1 and nested and "MAR-INF" not in tops:
        return tops.pop()
    return None


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``root`` or below it, both taken as they are (no resolving)."""
    path, root = os.fspath(path), os.fspath(root)
    return os.path.commonpath([path, root]) == root
