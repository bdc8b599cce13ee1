"""Writing the collected files and the manifest in each archive format.

Every format is written under a hidden staging name next to the output and renamed into
place at the end, so an interrupted run never leaves a half-written archive under the real name.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from .artifacts import MANIFEST_ENTRY
from .progress import Progress

COPY_CHUNK = 1 << 20
Writer = Callable[[Path, str, Mapping[str, Path], bytes, Progress], None]


class _CountingReader:
    """A binary file wrapper that reports every byte read to a Progress."""

    def __init__(self, raw: BinaryIO, progress: Progress) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._progress.advance(len(data))
        return data


def write_output(
    archive_format: str,
    output: Path,
    model_name: str,
    artifacts: Mapping[str, Path],
    manifest: bytes,
    progress: Progress,
) -> None:
    """Write ``artifacts`` plus ``manifest`` to ``output`` in ``archive_format``, replacing it."""
    staging = output.with_name(f".{output.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        WRITERS[archive_format](staging, model_name, artifacts, manifest, progress)
        _move_into_place(staging, output)
    except BaseException:
        _remove(staging)
        raise


def _write_zip(
    staging: Path,
    artifacts: Mapping[str, Path],
    manifest: bytes,
    progress: Progress,
    compression: int,
) -> None:
    # strict_timestamps=False clamps pre-1980 mtimes instead of failing, as zip cannot hold them
    with zipfile.ZipFile(staging, "x", compression, strict_timestamps=False) as archive:
        for name, source in artifacts.items():
            info = zipfile.ZipInfo.from_file(source, name, strict_timestamps=False)
            info.compress_type = compression
            with open(source, "rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(_CountingReader(src, progress), dst, COPY_CHUNK)
        info = zipfile.ZipInfo(MANIFEST_ENTRY, date_time=time.localtime()[:6])
        info.compress_type = compression
        info.external_attr = 0o644 << 16
        archive.writestr(info, manifest)
        progress.advance(len(manifest))


def _write_deflated_zip(
    staging: Path, _: str, artifacts: Mapping[str, Path], manifest: bytes, progress: Progress
) -> None:
    _write_zip(staging, artifacts, manifest, progress, zipfile.ZIP_DEFLATED)


def _write_stored_zip(
    staging: Path, _: str, artifacts: Mapping[str, Path], manifest: bytes, progress: Progress
) -> None:
    _write_zip(staging, artifacts, manifest, progress, zipfile.ZIP_STORED)


def _write_tgz(
    staging: Path,
    model_name: str,
    artifacts: Mapping[str, Path],
    manifest: bytes,
    progress: Progress,
) -> None:
    with tarfile.open(staging, "x:gz") as archive:
        for name, source in artifacts.items():
            with open(source, "rb") as src:
                # Built by hand, not gettarinfo(): that would turn hard-linked inputs into
                # link entries, and every entry here is meant to be a plain file.
                stat = os.fstat(src.fileno())
                info = tarfile.TarInfo(f"{model_name}/{name}")
                info.size = stat.st_size
                info.mtime = int(stat.st_mtime)
                info.mode = stat.st_mode & 0o777
                archive.addfile(info, _CountingReader(src, progress))
        info = tarfile.TarInfo(f"{model_name}/{MANIFEST_ENTRY}")
        info.size = len(manifest)
        info.mtime = int(time.time())
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(manifest))
        progress.advance(len(manifest))


def _write_directory(
    staging: Path, _: str, artifacts: Mapping[str, Path], manifest: bytes, progress: Progress
) -> None:
    staging.mkdir()
    for name, source in artifacts.items():
        destination = staging / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as src, open(destination, "xb") as dst:
            shutil.copyfileobj(_CountingReader(src, progress), dst, COPY_CHUNK)
        shutil.copymode(source, destination)
    manifest_path = staging / MANIFEST_ENTRY
    manifest_path.parent.mkdir(exist_ok=True)
    manifest_path.write_bytes(manifest)
    progress.advance(len(manifest))


WRITERS: dict[str, Writer] = {
    "default": _write_deflated_zip,
    "zip-store": _write_stored_zip,
    "tgz": _write_tgz,
    "no-archive": _write_directory,
}


def _move_into_place(staging: Path, output: Path) -> None:
    # os.replace swaps a file atomically but cannot replace a directory, nor a file by one
    if output.is_dir() and not output.is_symlink():
        shutil.rmtree(output)
    elif staging.is_dir() and (output.exists() or output.is_symlink()):
        output.unlink()
    os.replace(staging, output)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
