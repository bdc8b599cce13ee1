"""Writing checked entries into a target directory, never outside it.

Files and directories are written first and symlinks made last, so no entry can be
written through a link; once everything is in place every link is resolved on disk and
must still land inside the target (this catches chains of links that each looked harmless).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from .entries import FORMAT_ERRORS, Entry
from .errors import ArchiveError, ArchiveTooLargeError, CorruptArchiveError, UnsafeArchiveError
from .paths import EntryPath, is_within

COPY_CHUNK = 1 << 20
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class Extractor:
    """Writes entries under ``target`` while counting bytes against ``max_bytes``.

    Both the sizes entries declare and the bytes actually written are counted, since
    a header can lie about what its data expands to.
    """

    def __init__(self, target: Path, source: Path, max_bytes: int) -> None:
        self._target = target
        self._source = source
        self._max_bytes = max_bytes
        self._declared = 0
        self._written = 0
        self._files: set[EntryPath] = set()
        self._symlinks: list[Entry] = []

    def add(self, entry: Entry) -> None:
        """Write one entry (symlinks are only noted, for :meth:`finish`)."""
        try:
            if entry.kind == "dir":
                self._destination(entry.path).mkdir(exist_ok=True)
            elif entry.kind == "file":
                self._write_file(entry)
            elif entry.kind == "hardlink":
                self._write_hardlink(entry)
            else:
                self._symlinks.append(entry)
        except OSError as exc:
            raise ArchiveError(
                f"cannot extract entry {entry.name!r} of {self._source} "
                f"into {self._target}: {exc.strerror or exc}"
            ) from exc

    def finish(self) -> None:
        """Make the noted symlinks."""
        for entry in self._symlinks:
            self._refuse_linked_parent(entry)
            destination = self._destination(entry.path)
            try:
                os.symlink(entry.link, destination)
            except FileExistsError as exc:
                raise UnsafeArchiveError(
                    f"symlink {entry.name!r} in {self._source} collides with another entry"
                ) from exc

    def _refuse_linked_parent(self, entry: Entry) -> None:
        # a link made inside an earlier link would land wherever that one points
        for depth in range(1, len(entry.path)):
            if self._target.joinpath(*entry.path[:depth]).is_symlink():
                parent = "/".join(entry.path[:depth])
                raise UnsafeArchiveError(
                    f"symlink {entry.name!r} in {self._source} lies under the symlink {parent!r}"
                )

    def _destination(self, path: EntryPath) -> Path:
        destination = self._target.joinpath(*path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        return destination

    def _write_file(self, entry: Entry) -> None:
        self._declared += entry.size
        self._check_size(entry, self._declared)
        destination = self._destination(entry.path)
        self._files.add(entry.path)
        if entry.origin is not None and _try_hardlink(entry.origin, destination):
            self._written += entry.size
            return
        descriptor = os.open(destination, WRITE_FLAGS, 0o600)
        with os.fdopen(descriptor, "wb") as output, self._open(entry) as data:
            while chunk := self._read(entry, data):
                self._written += len(chunk)
                self._check_size(entry, self._written)
                output.write(chunk)
            os.fchmod(output.fileno(), entry.mode | 0o600)

    def _write_hardlink(self, entry: Entry) -> None:
        linked = tuple(entry.link.split("/"))
        if linked not in self._files:
            raise UnsafeArchiveError(
                f"hard link {entry.name!r} in {self._source} does not name an earlier "
                f"file entry: {entry.link!r}"
            )
        destination = self._destination(entry.path)
        destination.unlink(missing_ok=True)
        os.link(self._target.joinpath(*linked), destination, follow_symlinks=False)
        self._files.add(entry.path)

    def _check_size(self, entry: Entry, total: int) -> None:
        if total > self._max_bytes:
            raise ArchiveTooLargeError(
                f"{self._source} expands to more than the {self._max_bytes} bytes allowed "
                f"(reached at entry {entry.name!r})"
            )

    def _open(self, entry: Entry) -> BinaryIO:
        assert entry.opener is not None, "file entries always carry an opener"
        try:
            return entry.opener()
        except FORMAT_ERRORS as exc:
            raise self._corrupt(entry, exc) from exc

    def _read(self, entry: Entry, data: BinaryIO) -> bytes:
        try:
            return data.read(COPY_CHUNK)
        except FORMAT_ERRORS as exc:
            raise self._corrupt(entry, exc) from exc

    def _corrupt(self, entry: Entry, exc: Exception) -> CorruptArchiveError:
        return CorruptArchiveError(
            f"entry {entry.name!r} in {self._source} is damaged or does not match its header: {exc}"
        )


def hoist_single_directory(target: Path) -> None:
    """Move the content of a lone top-level directory up into ``target`` itself."""
    children = list(target.iterdir())
    if len(children) != 1 or children[0].name == "MAR-INF":
        return
    lone = children[0]
    if lone.is_symlink() or not lone.is_dir():
        return
    # renamed first, so that a child with the directory's own name can move up
    parked = lone.rename(target / f".hoist-{secrets.token_hex(8)}")
    for child in parked.iterdir():
        child.rename(target / child.name)
    parked.rmdir()


def verify_symlinks(target: Path, source: Path) -> None:
    """Raise UnsafeArchiveError if any symlink under ``target`` resolves outside it."""
    root = os.path.realpath(target)
    for directory, subdirectories, files in os.walk(target):
        for name in subdirectories + files:
            path = os.path.join(directory, name)
            if os.path.islink(path) and not is_within(os.path.realpath(path), root):
                relative = os.path.relpath(path, target)
                raise UnsafeArchiveError(
                    f"symlink {relative!r} from {source} resolves outside the model directory"
                )


def _try_hardlink(origin: Path, destination: Path) -> bool:
    """Link ``origin`` in place of a copy; False where links are impossible (other device)."""
    try:
        destination.unlink(missing_ok=True)
        os.link(origin, destination, follow_symlinks=False)
    except OSError:
        return False
    return True
