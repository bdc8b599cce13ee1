"""Reading a model archive's manifest, and unpacking an archive safely for a worker."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .entries import Entry, SourceKind, open_entries
from .errors import ArchiveError, InvalidManifestError, MissingHandlerError, UnsafeArchiveError
from .extractor import Extractor, hoist_single_directory, verify_symlinks
from .manifest import MANIFEST_PATH, Manifest
from .paths import EntryPath, is_within, single_top_directory

DEFAULT_MAX_UNCOMPRESSED_BYTES = 10 * 1024**3
MAX_MANIFEST_BYTES = 1024 * 1024
_MANIFEST_PARTS: EntryPath = tuple(MANIFEST_PATH.split("/"))


def read_manifest(
    source: Path, *, model_name: str | None = None, handler: str | None = None
) -> Manifest:
    """The manifest of a zip (.mar), a gzip-compressed tar or a model directory, unextracted.

    ``model_name`` and ``handler`` override the manifest's, as the register API's
    parameters do, before the manifest is checked. A directory without MAR-INF gives
    the empty ``Manifest()`` (name None unless overridden). Raises ArchiveNotFoundError,
    CorruptArchiveError, InvalidManifestError, MissingHandlerError, UnsafeArchiveError.
    """
    source = Path(source)
    with open_entries(source) as (kind, entries):
        if kind == "dir":
            root = _directory_model_root(source)
            data = _read_directory_manifest(root, source)
            has_file = _file_lookup(root)
        else:
            data, files = _scan_archive(entries, source)
            has_file = files.__contains__
    return _checked_manifest(data, kind, source, model_name, handler, has_file)


def extract_archive(
    source: Path,
    target_dir: Path,
    *,
    model_name: str | None = None,
    handler: str | None = None,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Manifest:
    """Unpack ``source`` into ``target_dir`` (created; must be absent or empty) and return
    its manifest, checked as :func:`read_manifest` checks it.

    A zip or gzip-compressed tar is extracted; a directory is copied, hard-linking
    files where the filesystem allows. A lone top-level directory (the tgz layout) becomes
    the model directory itself. Nothing is ever written outside ``target_dir``, which is
    removed again on any error. Raises ArchiveTooLargeError when more than
    ``max_uncompressed_bytes`` would be written, and the errors of :func:`read_manifest`.
    """
    source, target = Path(source), Path(target_dir)
    kind = unpack_archive(source, target, max_uncompressed_bytes)
    try:
        manifest_file = target / MANIFEST_PATH
        data = _read_capped_file(manifest_file, source) if manifest_file.is_file() else None
        return _checked_manifest(data, kind, source, model_name, handler, _file_lookup(target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def unpack_archive(source: Path, target: Path, max_uncompressed_bytes: int) -> SourceKind:
    """Unpack (or copy) ``source`` into ``target`` as :func:`extract_archive` does, reading
    no manifest (a workflow archive's is not MAR-INF's); what it is. ``target`` is removed
    again on any error."""
    _prepare_target(target)
    try:
        with open_entries(source, max_bytes=max_uncompressed_bytes) as (kind, entries):
            if kind == "dir" and is_within(os.path.realpath(target), os.path.realpath(source)):
                raise ArchiveError(f"cannot copy directory {source} into itself: {target}")
            extractor = Extractor(target, source, max_uncompressed_bytes)
            for entry in entries:
                extractor.add(entry)
            extractor.finish()
        hoist_single_directory(target)
        verify_symlinks(target, source)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return kind


def check_handler(manifest: Manifest, has_file: Callable[[str], bool], where: str) -> None:
    """Raise MissingHandlerError when the handler names a .py file that is not there.

    ``dir/file``, ``file.py`` and either with ``:function`` name a file, looked up as
    given and by its base name (manifests keep base names). A bare ``name`` without
    ".py" may be a built-in handler or an importable module, so it is not required.
    """
    if not manifest.handler or manifest.runtime == "LSP":
        return
    module = manifest.handler.split(":", 1)[0]
    if "/" not in module and not module.endswith(".py"):
        return
    file = module if module.endswith(".py") else f"{module}.py"
    candidates = (file, posixpath.basename(file))
    if any(_is_relative(name) and has_file(name) for name in candidates):
        return
    raise MissingHandlerError(
        f"handler file {file!r} (handler {manifest.handler!r}) is not in {where}"
    )


def _checked_manifest(
    data: bytes | None,
    kind: SourceKind,
    source: Path,
    model_name: str | None,
    handler: str | None,
    has_file: Callable[[str], bool],
) -> Manifest:
    origin = f"{MANIFEST_PATH} of {source}"
    if data is None:
        # TorchServe loads a bare model directory with an empty manifest; an archive
        # without one is a packaging mistake, reported as such.
        if kind != "dir":
            raise InvalidManifestError(f"{source} has no {MANIFEST_PATH}")
        manifest = Manifest()
    else:
        manifest = Manifest.from_json(data, origin=origin)
    manifest = dataclasses.replace(
        manifest,
        model_name=model_name or manifest.model_name,
        handler=handler or manifest.handler,
    )
    if data is not None:
        manifest.validate(origin)
    check_handler(manifest, has_file, str(source))
    return manifest


def _scan_archive(entries: Iterable[Entry], source: Path) -> tuple[bytes | None, set[str]]:
    """Read through an archive: its manifest bytes and the names of its files."""
    paths: list[EntryPath] = []
    manifests: dict[EntryPath, bytes] = {}
    for entry in entries:
        paths.append(entry.path)
        # only the root manifest, or the one under the first top directory, can count
        wanted = (_MANIFEST_PARTS, (paths[0][0], *_MANIFEST_PARTS))
        if entry.kind == "file" and entry.path in wanted:
            manifests[entry.path] = _read_capped_entry(entry, source)
    top = single_top_directory(paths)
    skip = 1 if top else 0
    files = {"/".join(path[skip:]) for path in paths}
    return manifests.get((top, *_MANIFEST_PARTS) if top else _MANIFEST_PARTS), files


def _directory_model_root(source: Path) -> Path:
    children = list(source.iterdir())
    if len(children) == 1 and children[0].name != "MAR-INF":
        lone = children[0]
        if lone.is_dir() and not lone.is_symlink():
            return lone
    return source


def _read_directory_manifest(root: Path, source: Path) -> bytes | None:
    manifest_file = root / MANIFEST_PATH
    if not manifest_file.is_file():
        return None
    if not is_within(os.path.realpath(manifest_file), os.path.realpath(source)):
        raise UnsafeArchiveError(f"{MANIFEST_PATH} of {source} is a link to outside it")
    return _read_capped_file(manifest_file, source)


def _file_lookup(root: Path) -> Callable[[str], bool]:
    def has_file(name: str) -> bool:
        return (root / name).is_file()

    return has_file


def _read_capped_entry(entry: Entry, source: Path) -> bytes:
    assert entry.opener is not None, "file entries always carry an opener"
    with entry.opener() as stream:
        return _read_capped(stream, source)


def _read_capped_file(path: Path, source: Path) -> bytes:
    with open(path, "rb") as stream:
        return _read_capped(stream, source)


def _read_capped(stream: BinaryIO, source: Path) -> bytes:
    data = stream.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidManifestError(
            f"{MANIFEST_PATH} of {source} is larger than {MAX_MANIFEST_BYTES} bytes"
        )
    return data


def _is_relative(name: str) -> bool:
    return not name.startswith("/") and ".." not in name.split("/")


def _prepare_target(target: Path) -> None:
    try:
        target.mkdir(parents=True)
    except FileExistsError:
        if not target.is_dir() or any(target.iterdir()):
            raise ArchiveError(f"target exists and is not an empty directory: {target}") from None
