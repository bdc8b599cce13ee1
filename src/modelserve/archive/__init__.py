"""Model archives: resolving a url in the model store, reading MAR-INF/MANIFEST.json, and
unpacking .mar (zip), .tar.gz and model directories safely. Standard library only."""

from .errors import (
    ArchiveError,
    ArchiveNotFoundError,
    ArchiveTooLargeError,
    CorruptArchiveError,
    InvalidManifestError,
    MissingHandlerError,
    RemoteUrlNotAllowedError,
    UnsafeArchiveError,
    UnsafeUrlError,
)
from .manifest import MANIFEST_PATH, Manifest
from .reader import (
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    check_handler,
    extract_archive,
    read_manifest,
    unpack_archive,
)
from .resolver import default_model_name, list_model_store, resolve_archive

__all__ = [
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "MANIFEST_PATH",
    "ArchiveError",
    "ArchiveNotFoundError",
    "ArchiveTooLargeError",
    "CorruptArchiveError",
    "InvalidManifestError",
    "Manifest",
    "MissingHandlerError",
    "RemoteUrlNotAllowedError",
    "UnsafeArchiveError",
    "UnsafeUrlError",
    "check_handler",
    "default_model_name",
    "extract_archive",
    "list_model_store",
    "read_manifest",
    "resolve_archive",
    "unpack_archive",
]
