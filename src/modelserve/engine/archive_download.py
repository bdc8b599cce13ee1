"""Downloading a model archive from an allowed http(s) url into the model store.

The body streams into a hidden ``.<name>.part-<random>`` file in the model store, which
takes the archive's name only once it is complete and on disk; every failure (origin
error, timeout, size limit, cancellation) removes it, so the store never holds a partial
archive. Redirects are followed by hand so that each hop is checked: it must stay on the
same scheme, host and port and match ``allowed_urls`` too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin

import httpx

from modelserve.archive import ArchiveError, url_policy
from modelserve.config import Settings
from modelserve.engine.errors import (
    BadRequestException,
    ConflictStatusException,
    DownloadArchiveException,
    InternalServerException,
    ModelNotFoundException,
)

log = logging.getLogger("modelserve.download")

MAX_REDIRECTS = 5
CONNECT_TIMEOUT_S = 10.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A progress line every 10 % of a declared length (at most one per 8 MiB, so small
# archives log only their start and finish), or every 64 MiB when no length is declared.
PROGRESS_MIN_STEP = 8 * 1024**2
PROGRESS_UNKNOWN_STEP = 64 * 1024**2


async def download_archive(url: str, settings: Settings) -> Path:
    """Download ``url`` to ``<model_store>/<last path segment>`` and return that path.

    Raises ModelNotFoundException (unsafe or not allowed url, no model store),
    BadRequestException (the url names no file), ConflictStatusException (the file is
    already in the store), DownloadArchiveException (the origin failed, a redirect was
    refused, too large, timed out) and InternalServerException (the store is not writable).
    """
    source = _allowed_source(url, settings.allowed_urls)
    store = settings.model_store
    if store is None:
        raise ModelNotFoundException("Model store has not been configured.")
    name = source.file_name
    # Hidden names are kept for part files; a padded name could not be registered by name.
    if not name or name.startswith(".") or name != name.strip():
        raise BadRequestException(f"The url does not name an archive file: {url}")
    target = Path(store) / name
    if os.path.lexists(target):
        raise _conflict(target)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{name}.part-", dir=store)
    except OSError as exc:
        raise InternalServerException(f"Cannot write into the model store: {exc}") from exc
    temp = Path(temp_name)
    sink = os.fdopen(fd, "wb")
    started = time.monotonic()
    log.info("downloading %s to %s", source.display, target)
    try:
        try:
            size = await asyncio.wait_for(
                _fetch(url, source, sink, settings), timeout=settings.download_timeout
            )
        except asyncio.TimeoutError as exc:
            limit = f"{settings.download_timeout:g} s (download_timeout)"
            raise _failed(url, f"timed out after {limit}") from exc
        except httpx.HTTPError as exc:  # refused connection, reset, bad response, ...
            raise _failed(url, str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise InternalServerException(f"Cannot write into the model store: {exc}") from exc
    except BaseException:  # cancellation too: no part file may stay behind
        sink.close()
        temp.unlink(missing_ok=True)
        raise
    try:
        # In a thread: fsync of a large file takes a while. A cancellation here lets the
        # thread finish; it removes the part file itself when it fails.
        await asyncio.to_thread(_publish, sink, temp, target)
    except FileExistsError as exc:
        raise _conflict(target) from exc
    except OSError as exc:
        raise InternalServerException(f"Cannot write into the model store: {exc}") from exc
    log.info("downloaded %s: %d bytes in %.1f s", source.display, size, time.monotonic() - started)
    return target


def _allowed_source(url: str, patterns: Sequence[str]) -> url_policy.RemoteUrl:
    """The normalised url, when it is safe and allowed (404 otherwise, as in TorchServe)."""
    try:
        source = url_policy.normalize_remote_url(url)
        url_policy.require_allowed(url, source.text, patterns)
    except ArchiveError as exc:
        raise ModelNotFoundException(str(exc)) from exc
    return source


async def _fetch(url: str, source: url_policy.RemoteUrl, sink: BinaryIO, settings: Settings) -> int:
    """GET ``source`` (following allowed redirects) and write the body to ``sink``."""
    timeout = httpx.Timeout(
        settings.download_timeout, connect=min(CONNECT_TIMEOUT_S, settings.download_timeout)
    )
    # identity: the stored bytes are the served bytes, and Content-Length counts them
    headers = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=timeout, headers=headers
    ) as client:
        current = source
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", current.request_url) as response:
                if response.status_code in REDIRECT_STATUSES:
                    current = _redirect_target(url, current, response, settings.allowed_urls)
                    continue
                if not response.is_success:
                    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    raise _failed(url, reason)
                return await _stream_body(url, source, response, sink, settings.max_download_size)
    raise _failed(url, f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(
    url: str,
    current: url_policy.RemoteUrl,
    response: httpx.Response,
    patterns: Sequence[str],
) -> url_policy.RemoteUrl:
    """Where a redirect leads, when that is as allowed as the url itself."""
    location = response.headers.get("location")
    if not location:
        raise _failed(url, f"HTTP {response.status_code} redirect without a Location")
    try:
        target = url_policy.normalize_remote_url(urljoin(current.request_url, location))
    except ArchiveError as exc:
        raise _failed(url, f"redirect to {location!r} refused: {exc}") from exc
    if (target.scheme, target.host, target.port) != (current.scheme, current.host, current.port):
        raise _failed(url, f"redirect to {location!r} refused: it leaves {current.origin}")
    if not url_policy.is_allowed(target.text, patterns):
        raise _failed(
            url, f"redirect to {location!r} refused: it does not match any allowed URL(s)"
        )
    return target


async def _stream_body(
    url: str,
    source: url_policy.RemoteUrl,
    response: httpx.Response,
    sink: BinaryIO,
    max_bytes: int,
) -> int:
    """Copy the body to ``sink``, within ``max_bytes``; returns its size."""
    declared = _content_length(response)
    if declared is not None and declared > max_bytes:
        raise _too_large(url, max_bytes, f"it declares {declared} bytes")
    step = PROGRESS_UNKNOWN_STEP if declared is None else max(declared // 10, PROGRESS_MIN_STEP)
    received = 0
    next_report = step
    # Chunks go to the page cache, which takes microseconds; only fsync needs a thread.
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(url, max_bytes, f"more than {max_bytes} bytes sent")
        sink.write(chunk)
        if received >= next_report:
            if declared:
                done = f"{received * 100 // declared}% ({received} of {declared} bytes)"
            else:
                done = f"{received} bytes"
            log.info("downloading %s: %s", source.display, done)
            next_report += step
    return received


def _publish(sink: BinaryIO, temp: Path, target: Path) -> None:
    """Put the complete download on disk and under its name; the part file goes either way."""
    try:
        with sink:
            sink.flush()
            os.fsync(sink.fileno())
        # A hard link never replaces an existing file: of two downloads of one name (or a
        # file copied in meanwhile) the first wins and the other gets FileExistsError.
        try:
            os.link(temp, target)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP):
                raise
            # A store on a filesystem without hard links: check, then rename.
            if os.path.lexists(target):
                raise FileExistsError(target) from exc
            os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _content_length(response: httpx.Response) -> int | None:
    """The declared body size; None when absent (chunked) or not a number."""
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _failed(url: str, reason: str) -> DownloadArchiveException:
    return DownloadArchiveException(f"Failed to download archive from: {url}: {reason}")


def _too_large(url: str, max_bytes: int, detail: str) -> DownloadArchiveException:
    return _failed(url, f"the archive exceeds max_download_size ({max_bytes} bytes): {detail}")


def _conflict(target: Path) -> ConflictStatusException:
    return ConflictStatusException(
        f"Model archive file already exists in the model store: {target.name}. "
        "Register it by name, or remove it first."
    )
