"""Which register urls may be used: spelling checks, normalisation and ``allowed_urls``.

A url is checked in the form it will be used in, not as typed: scheme and host lower case,
the host in IDNA (ASCII) form, no default port, the path percent-decoded. Spellings that
could make a pattern see one thing while the origin or the file system sees another are
refused outright: ".." (raw or encoded, at any depth of encoding), encoded "/" or "\\",
backslashes, control characters, and user info (``http://allowed@evil/``). Each pattern of
``allowed_urls`` must then match the whole normalised url, case-insensitively (TorchServe's
rule). Standard library only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from .errors import RemoteUrlNotAllowedError, UnsafeUrlError

REMOTE_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Characters a path keeps unescaped when it is sent (RFC 3986 pchar plus "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class RemoteUrl:
    """An http(s) url after normalisation; ``text`` is what patterns are matched against."""

    scheme: str
    host: str  # lower-case ASCII (IDNA); an IPv6 address in brackets
    port: int  # always explicit, the default one filled in
    path: str  # percent-decoded, starts with "/"
    query: str  # as given, still encoded

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, the port only when it is not the scheme's default."""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"

    @property
    def text(self) -> str:
        """The normalised url: origin, decoded path and query."""
        return self.origin + self.path + (f"?{self.query}" if self.query else "")

    @property
    def request_url(self) -> str:
        """The url to send: the decoded path encoded again, so it means what ``text`` says."""
        query = f"?{self.query}" if self.query else ""
        return self.origin + quote(self.path, safe=_PATH_SAFE) + query

    @property
    def display(self) -> str:
        """The url without its query, for logs (a query may hold a signed token)."""
        return self.origin + self.path

    @property
    def file_name(self) -> str:
        """The last path segment, decoded: the name a download gets in the model store."""
        return self.path.rsplit("/", 1)[-1]


def url_scheme(url: str) -> str | None:
    """The lower-case scheme of ``scheme://...``; None for a plain name or path."""
    match = _URL_SCHEME.match(url)
    return match.group(1).lower() if match else None


def is_remote_url(url: str) -> bool:
    """Whether registering ``url`` means a download (http or https)."""
    return url_scheme(url) in REMOTE_SCHEMES


def check_url_text(url: str) -> None:
    """Refuse spellings that are unsafe in any url; a local one is checked whole.

    Raises UnsafeUrlError for control characters, leading or trailing whitespace,
    backslashes, ".." and percent-encoded separators.
    """
    _check_raw(url)
    _check_decoded(url, url)


def normalize_remote_url(url: str) -> RemoteUrl:
    """Check and normalise an http or https url; raises UnsafeUrlError when it is unsafe."""
    _check_raw(url)
    if any(char.isspace() for char in url):
        raise UnsafeUrlError(f"Whitespace is not allowed in url: {url}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad IPv6 literal or a port that is no number in range
        raise UnsafeUrlError(f"Invalid host or port in url: {url}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise UnsafeUrlError(f"Only http and https urls can be downloaded: {url}")
    if "@" in parts.netloc:
        raise UnsafeUrlError(f"User info (user@host) is not allowed in url: {url}")
    if port == 0:
        raise UnsafeUrlError(f"Invalid host or port in url: {url}")
    # Only the path: a query may well hold encoded "/" (signed S3 urls do), harmlessly.
    _check_decoded(parts.path, url)
    try:
        path = unquote(parts.path, errors="strict") or "/"
    except UnicodeDecodeError as exc:
        raise UnsafeUrlError(f"Invalid percent-encoding in url: {url}") from exc
    return RemoteUrl(
        scheme=scheme,
        host=_normal_host(parts.hostname, url),
        port=port or DEFAULT_PORTS[scheme],
        path=path,
        query=parts.query,
    )


def file_url(path: str | os.PathLike[str]) -> str:
    """The normalised ``file://`` url of a local path: its real path, links resolved."""
    return "file://" + os.path.realpath(path)


def is_allowed(normalized: str, patterns: Iterable[str]) -> bool:
    """Whether one of ``patterns`` matches the whole of ``normalized``, ignoring case."""
    return any(re.fullmatch(pattern, normalized, re.IGNORECASE) for pattern in patterns)


def require_allowed(url: str, normalized: str, patterns: Iterable[str]) -> None:
    """Raise RemoteUrlNotAllowedError (TorchServe's wording) unless a pattern matches."""
    if not is_allowed(normalized, patterns):
        raise RemoteUrlNotAllowedError(f"Given URL {url} does not match any allowed URL(s)")


def _check_raw(url: str) -> None:
    """The checks on the url as typed. ".." anywhere is refused, as TorchServe does."""
    if url != url.strip():
        raise UnsafeUrlError(f"Leading or trailing whitespace is not allowed in url: {url!r}")
    _check_text(url, url)


def _check_text(text: str, url: str) -> None:
    """Refuse control characters, ".." and backslashes in ``text`` (``url`` or a decoding)."""
    if _has_control(text):
        raise UnsafeUrlError(f"Control characters are not allowed in url: {url!r}")
    if ".." in text:
        raise UnsafeUrlError(f"Relative path is not allowed in url: {url}")
    if "\\" in text:
        raise UnsafeUrlError(f"Backslash is not allowed in url: {url}")


def _check_decoded(part: str, url: str) -> None:
    """The checks on every level of percent-decoding of ``part``: a server or a later step
    may decode again, so ``%252e%252e`` is a ".." as much as ``%2e%2e`` is."""
    slashes = part.count("/")
    level = unquote(part)
    while level != part:
        _check_text(level, url)
        if level.count("/") != slashes:
            raise UnsafeUrlError(f"Percent-encoded '/' is not allowed in url: {url}")
        part, level = level, unquote(level)


def _has_control(text: str) -> bool:
    """Control or invisible format characters (NUL, CR/LF, bidi overrides ...)."""
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in text)


def _normal_host(host: str | None, url: str) -> str:
    """The host in lower-case ASCII: IDNA for names, compressed form for IP addresses."""
    if not host:
        raise UnsafeUrlError(f"No host in url: {url}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UnsafeUrlError(f"Invalid host name in url: {url}") from exc
    if not _HOST_NAME.match(ascii_host):
        raise UnsafeUrlError(f"Invalid host name in url: {url}")
    # No top-level domain is numeric: "127.1", "2130706433" or "0x7f.1" are IPv4 addresses
    # to the resolver, in spellings no pattern written for 127.0.0.1 would expect.
    if _NUMERIC_LABEL.match(ascii_host.rstrip(".").rsplit(".", 1)[-1]):
        raise UnsafeUrlError(f"Non-canonical IP address in url: {url}")
    return ascii_host
