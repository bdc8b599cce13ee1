"""Model files sent with a repository load (Triton's ``file:<version>/<path>`` parameters),
written into a model directory of their own so that it is read like a repository's.

The paths come from the client: each must be relative, inside a numeric version directory,
and free of ``..``, so nothing is written outside the staging directory.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from modelserve.engine.dataplane import FILE_PARAMETER_PREFIX
from modelserve.repository.triton import VERSION_NAME, RepositoryError


def write_model_directory(directory: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (path under the model directory → contents) into ``directory``.
    RepositoryError naming the first path that is not ``<version>/<file>``."""
    for name, contents in files.items():
        path = PurePosixPath(name)
        parts = path.parts
        if (
            path.is_absolute()
            or len(parts) < 2
            or any(part in ("", ".", "..") for part in parts)
            or not VERSION_NAME.fullmatch(parts[0])
        ):
            raise RepositoryError(
                f"{FILE_PARAMETER_PREFIX}{name}: a file must be named <version>/<path> inside "
                "the model (for example file:1/model.onnx), with no '..'"
            )
        target = directory.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents)
