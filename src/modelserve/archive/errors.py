"""Errors raised while resolving, reading and unpacking model archives.

Each message says what is wrong and names the archive and, where there is one, the entry.
TorchServe 0.12 answers a registration that fails with these as follows (the API maps them):
ArchiveNotFoundError and UnsafeUrlError → 404 (ModelNotFoundException), the others → 400.
"""


class ArchiveError(Exception):
    """Base class: the archive cannot be used."""


class ArchiveNotFoundError(ArchiveError):
    """Nothing exists where the url or name points."""


class RemoteUrlNotAllowedError(ArchiveError):
    """The url needs a download (http, https, s3 ...), which is not enabled."""


class UnsafeArchiveError(ArchiveError):
    """An entry would land outside the target directory, or is a device or special file."""


class UnsafeUrlError(UnsafeArchiveError):
    """The url is empty, contains "..", or points outside the model store."""


class ArchiveTooLargeError(ArchiveError):
    """The archive expands to more bytes than allowed."""


class CorruptArchiveError(ArchiveError):
    """The file is not a readable zip or gzip-compressed tar, or an entry's data is damaged."""


class InvalidManifestError(ArchiveError):
    """MAR-INF/MANIFEST.json is missing, not valid JSON, or lacks a required field."""


class MissingHandlerError(ArchiveError):
    """The handler file the manifest names is not in the archive."""
