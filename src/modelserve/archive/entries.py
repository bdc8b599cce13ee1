"""One stream of checked entries from any source: zip, gzip-compressed tar, or directory."""

from __future__ import annotations

import functools
import gzip
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from .errors import (
    ArchiveNotFoundError,
    ArchiveTooLargeError,
    CorruptArchiveError,
    UnsafeArchiveError,
)
from .paths import EntryPath, check_symlink_target, entry_path, is_within

EntryKind = Literal["file", "dir", "symlink", "hardlink"]
SourceKind = Literal["zip", "tgz", "dir"]

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a first entry, or an empty archive
GZIP_MAGIC = b"\x1f\x8b"
MAX_SYMLINK_TARGET = 4096
# What the zip, tar and gzip readers raise for damaged input
FORMAT_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    gzip.BadGzipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # a zip compression method this Python lacks
)


@dataclass(frozen=True)
class Entry:
    """One entry, its path already checked safe.

    ``link`` is a symlink's target text, or the path of the earlier entry a hard link
    repeats. ``opener`` reads a file's bytes and is valid only until the next entry is
    taken (tar is read as a stream). ``origin`` is the file itself for directory sources,
    so that it can be hard-linked instead of copied.
    """

    name: str
    path: EntryPath
    kind: EntryKind
    size: int = 0
    mode: int = 0o644
    link: str = ""
    opener: Callable[[], BinaryIO] | None = None
    origin: Path | None = None


def source_kind(source: Path) -> SourceKind:
    """What ``source`` is, judged by its content rather than its name."""
    if source.is_dir():
        return "dir"
    if not source.exists():
        raise ArchiveNotFoundError(f"Model not found at: {source}")
    if not source.is_file():  # a fifo or device would block or never end
        raise CorruptArchiveError(f"not a regular file or directory: {source}")
    with open(source, "rb") as stream:
        head = stream.read(4)
    if head in ZIP_MAGICS:
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "tgz"
    raise CorruptArchiveError(f"not a zip (.mar) or gzip-compressed tar archive: {source}")


@contextmanager
def open_entries(
    source: Path, *, max_bytes: int | None = None
) -> Iterator[tuple[SourceKind, Iterator[Entry]]]:
    """Open ``source`` and give its kind and its entries, in archive order.

    For a zip the sizes its headers declare are summed before the first entry is given,
    and ArchiveTooLargeError raised when they exceed ``max_bytes``. Damaged input raises
    CorruptArchiveError, also while the caller is iterating.
    """
    kind = source_kind(source)
    try:
        if kind == "dir":
            yield kind, _directory_entries(source)
        elif kind == "zip":
            with zipfile.ZipFile(source) as archive:
                yield kind, _zip_entries(archive, source, max_bytes)
        else:
            # stream mode reads the gzip once, front to back, without seeking
            with tarfile.open(source, "r|gz") as archive:
                yield kind, _tar_entries(archive, source)
    except FORMAT_ERRORS as exc:
        raise CorruptArchiveError(f"corrupt or unreadable archive {source}: {exc}") from exc


def _zip_entries(archive: zipfile.ZipFile, source: Path, max_bytes: int | None) -> Iterator[Entry]:
    entries = [_zip_entry(archive, info, source) for info in archive.infolist()]
    declared = sum(entry.size for entry in entries if entry)
    if max_bytes is not None and declared > max_bytes:
        raise ArchiveTooLargeError(
            f"{source} declares {declared} bytes uncompressed, more than the {max_bytes} allowed"
        )
    yield from (entry for entry in entries if entry)


def _zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path) -> Entry | None:
    path = entry_path(info.filename, source)
    if not path:
        return None
    name = info.filename
    if info.flag_bits & 0x1:
        raise CorruptArchiveError(f"entry {name!r} in {source} is encrypted, which is unsupported")
    mode = info.external_attr >> 16
    # Only archives made on unix (create_system 3) carry file types in their attributes.
    file_type = stat.S_IFMT(mode) if info.create_system == 3 else 0
    if info.is_dir() or file_type == stat.S_IFDIR:
        return Entry(name, path, "dir")
    if file_type == stat.S_IFLNK:
        if info.file_size > MAX_SYMLINK_TARGET:
            raise UnsafeArchiveError(f"symlink {name!r} in {source} has an oversized target")
        target = archive.read(info).decode("utf-8", "surrogateescape")
        check_symlink_target(path, target, name, source)
        return Entry(name, path, "symlink", link=target)
    if file_type not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(f"entry {name!r} in {source} is a device or special file")
    return Entry(
        name,
        path,
        "file",
        size=info.file_size,
        mode=stat.S_IMODE(mode) & 0o777 or 0o644,
        opener=functools.partial(archive.open, info),
    )


def _tar_entries(archive: tarfile.TarFile, source: Path) -> Iterator[Entry]:
    for member in archive:
        path = entry_path(member.name, source)
        if not path:
            continue
        name = member.name
        if member.isdir():
            yield Entry(name, path, "dir")
        elif member.isreg():
            yield Entry(
                name,
                path,
                "file",
                size=member.size,
                mode=member.mode & 0o777,
                opener=functools.partial(archive.extractfile, member),
            )
        elif member.issym():
            check_symlink_target(path, member.linkname, name, source)
            yield Entry(name, path, "symlink", link=member.linkname)
        elif member.islnk():
            yield Entry(name, path, "hardlink", link=_hard_link_target(member, source))
        else:
            raise UnsafeArchiveError(f"entry {name!r} in {source} is a device or special file")


def _hard_link_target(member: tarfile.TarInfo, source: Path) -> str:
    try:
        return "/".join(entry_path(member.linkname, source))
    except UnsafeArchiveError as exc:
        raise UnsafeArchiveError(
            f"hard link {member.name!r} in {source} points outside it: {member.linkname!r}"
        ) from exc


def _directory_entries(source: Path) -> Iterator[Entry]:
    root = os.path.realpath(source)
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in subdirectories + sorted(files):
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, root)
            path = tuple(Path(relative).parts)
            status = os.lstat(full)
            if stat.S_ISDIR(status.st_mode):
                yield Entry(relative, path, "dir")
            elif stat.S_ISREG(status.st_mode):
                yield Entry(
                    relative,
                    path,
                    "file",
                    size=status.st_size,
                    mode=stat.S_IMODE(status.st_mode) & 0o777,
                    opener=functools.partial(open, full, "rb"),
                    origin=Path(full),
                )
            elif stat.S_ISLNK(status.st_mode):
                yield _directory_symlink(full, relative, path, directory, root, source)
            else:
                raise UnsafeArchiveError(
                    f"entry {relative!r} in {source} is a device or special file"
                )


def _directory_symlink(
    full: str, relative: str, path: EntryPath, directory: str, root: str, source: Path
) -> Entry:
    """A link inside a model directory, re-aimed relative to where it lands in the copy."""
    resolved = os.path.realpath(full)
    if not is_within(resolved, root):
        raise UnsafeArchiveError(
            f"symlink {relative!r} in {source} points outside it: {os.readlink(full)!r}"
        )
    return Entry(relative, path, "symlink", link=os.path.relpath(resolved, directory))
