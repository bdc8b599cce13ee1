"""model-archiver: build TorchServe-compatible model archives; needs neither torch nor a server.

Python callers use :func:`build_archive` with :class:`ArchiveOptions`; the ``model-archiver``
command wraps the same function.
"""

from .builder import build_archive
from .errors import ArchiverError
from .options import ARCHIVE_FORMATS, BUILTIN_HANDLERS, RUNTIMES, ArchiveOptions
from .version import ARCHIVER_VERSION

__version__ = ARCHIVER_VERSION
__all__ = [
    "ARCHIVE_FORMATS",
    "BUILTIN_HANDLERS",
    "RUNTIMES",
    "ArchiveOptions",
    "ArchiverError",
    "__version__",
    "build_archive",
]
