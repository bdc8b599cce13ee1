"""The archiver's own version, recorded as archiverVersion in every manifest."""

from importlib.metadata import PackageNotFoundError, version

try:
    ARCHIVER_VERSION = version("modelserve")
except PackageNotFoundError:  # imported from a source tree that was never installed
    ARCHIVER_VERSION = "0.0.0+unknown"
