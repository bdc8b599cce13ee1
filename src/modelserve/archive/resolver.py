"""Turning a register/startup ``url`` into a local archive path, as TorchServe 0.12 does
for local sources: a name or ``file://`` url is looked up in the model store."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ArchiveNotFoundError, RemoteUrlNotAllowedError, UnsafeUrlError
from .paths import is_within
from .url_policy import check_url_text, file_url, is_allowed, url_scheme

# Files `--models all` picks up; .tgz is accepted beside TorchServe's .tar.gz.
STORE_SUFFIXES = (".mar", ".model", ".tar.gz", ".tgz")


def resolve_archive(url: str, model_store: Path | None, allowed_urls: Sequence[str] = ()) -> Path:
    """The file or directory in ``model_store`` that ``url`` names.

    A plain name or relative path resolves to ``<model_store>/<basename>``, as in
    TorchServe; an absolute path or ``file://`` url must lie inside the model store, or
    its ``file://<real path>`` must match one of ``allowed_urls``.
    Raises UnsafeUrlError (empty, "..", other unsafe spellings, outside the store and not
    allowed), RemoteUrlNotAllowedError (http, https and other downloads),
    ArchiveNotFoundError (nothing there, or no store).
    """
    path = _local_path(url)
    if model_store is None:
        raise ArchiveNotFoundError(f"Model store has not been configured; cannot load: {url}")
    store = Path(model_store)
    if os.path.isabs(path):
        candidate = Path(os.path.normpath(path))
        if not _strictly_inside(candidate, store):
            if not is_allowed(file_url(candidate), allowed_urls):
                raise UnsafeUrlError(
                    f"Given URL {url} does not match any allowed URL(s) "
                    f"(it points outside the model store {store})"
                )
            candidate = Path(os.path.realpath(candidate))
    else:
        name = posixpath.basename(path.rstrip("/"))
        if name in ("", "."):
            raise ArchiveNotFoundError(f"Model not found at: {url}")
        candidate = store / name
    if candidate.is_file() or candidate.is_dir():
        return candidate
    raise ArchiveNotFoundError(f"Model not found at: {url}")


def default_model_name(path: str | os.PathLike[str]) -> str:
    """The model name a file gets when its manifest has none: the base name without its
    archive suffix, every non-word character replaced by "_".

    ``m.tar.gz`` gives ``m`` (TorchServe strips only ``.gz`` and gives ``m_tar``).
    """
    name = Path(path).name
    for suffix in STORE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = os.path.splitext(name)[0]
    return re.sub(r"\W", "_", name)


def list_model_store(model_store: Path) -> list[Path]:
    """What ``--models all`` loads: every non-hidden archive file and directory, by name."""
    store = Path(model_store)
    if not store.is_dir():
        raise ArchiveNotFoundError(f"model store is not a directory: {store}")
    return sorted(
        path
        for path in store.iterdir()
        if not path.name.startswith(".")
        and (path.is_dir() or (path.is_file() and path.name.endswith(STORE_SUFFIXES)))
    )


def _local_path(url: str) -> str:
    """The filesystem path a url names; refuses empty, unsafe and remote urls."""
    if not url or not url.strip():
        raise UnsafeUrlError("Model url is empty")
    check_url_text(url)
    scheme = url_scheme(url)
    if scheme is None:
        return url
    if scheme != "file":
        raise RemoteUrlNotAllowedError(
            f"Downloading models from {scheme} urls is not enabled: {url}"
        )
    parts = urlsplit(url)
    # file://name.mar puts the name where a host goes; like any relative path, it is
    # looked up by base name in the store
    host = "" if parts.netloc.lower() == "localhost" else parts.netloc
    return unquote(host + parts.path)


def _strictly_inside(candidate: Path, store: Path) -> bool:
    """Inside and not the store itself, judged as spelled or with links resolved
    (the store's own path may reach it through a link)."""
    for resolve in (os.path.abspath, os.path.realpath):
        path, root = resolve(candidate), resolve(store)
        if path != root and is_within(path, root):
            return True
    return False
