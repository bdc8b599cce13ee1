"""Model names → versions → default version; lookups raise TorchServe's 404s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelserve.engine.errors import (
    BadRequestException,
    ConflictStatusException,
    InvalidModelVersionException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)
from modelserve.engine.model_version import ModelVersion

# What a model name or version may be: not "." or "..", no "/", backslash or control character (both
# Python's and ECMAScript's regex syntax, since the OpenAPI document carries it too).
PATH_SEGMENT_PATTERN = r"^(?!\.\.?$)[^/\\\x00-\x1f\x7f-\x9f]+$"


@dataclass(slots=True)
class ModelEntry:
    """All versions of one model name and which one is the default."""

    versions: dict[str, ModelVersion] = field(default_factory=dict)
    default_version: str = ""


class ModelRegistry:
    """Every registered model version, addressable by name and version."""

    def __init__(self) -> None:
        self._models: dict[str, ModelEntry] = {}

    def __len__(self) -> int:
        return len(self._models)

    def names(self) -> list[str]:
        """Model names, sorted."""
        return sorted(self._models)

    def entry(self, name: str) -> ModelEntry:
        """The entry of ``name``; 404 when unknown."""
        entry = self._models.get(name)
        if entry is None:
            raise ModelNotFoundException(f"Model not found: {name}")
        return entry

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A version (the default one when ``version`` is None); 404 when unknown."""
        entry = self.entry(name)
        key = version or entry.default_version
        model_version = entry.versions.get(key)
        if model_version is None:
            raise ModelVersionNotFoundException(
                f"Model version: {version} does not exist for model: {name}"
            )
        return model_version

    def all_versions(self) -> list[ModelVersion]:
        """Every registered version of every model."""
        return [version for entry in self._models.values() for version in entry.versions.values()]

    def check_free(self, name: str, version: str) -> None:
        """Whether (name, version) can be registered: 400 for a name or version no URL path
        can address, 409 when it is already registered."""
        _check_path_segment("model name", name)
        _check_path_segment("model version", version)
        entry = self._models.get(name)
        if entry is not None and version in entry.versions:
            raise ConflictStatusException(
                f"Model version {version} is already registered for model {name}"
            )

    def add(self, model_version: ModelVersion) -> None:
        """Register a version; the first version of a name becomes its default."""
        self.check_free(model_version.name, model_version.version)
        entry = self._models.setdefault(model_version.name, ModelEntry())
        entry.versions[model_version.version] = model_version
        if not entry.default_version:
            entry.default_version = model_version.version

    def set_default(self, name: str, version: str) -> None:
        """Make ``version`` the default of ``name``."""
        entry = self.entry(name)
        if version not in entry.versions:
            raise ModelVersionNotFoundException(
                f"Model version {version} does not exist for model {name}"
            )
        entry.default_version = version

    def check_removable(self, name: str, version: str | None) -> ModelVersion:
        """The version an unregister call removes; 403 for a default with siblings."""
        model_version = self.get(name, version)
        entry = self._models[name]
        if model_version.version == entry.default_version and len(entry.versions) > 1:
            raise InvalidModelVersionException(f"Cannot remove default version for model {name}")
        return model_version

    def remove(self, model_version: ModelVersion) -> None:
        """Forget a version (and the name once its last version is gone)."""
        entry = self._models.get(model_version.name)
        if entry is None or entry.versions.get(model_version.version) is not model_version:
            return
        del entry.versions[model_version.version]
        if not entry.versions:
            del self._models[model_version.name]


def _check_path_segment(what: str, value: str) -> None:
    """400 unless ``value`` can be one segment of a URL path and of a file name.

    A name with "/" could never be described, scaled or unregistered (the router splits it),
    and the model directory is named after it: "../x" would be extracted outside the runtime
    directory, and a NUL byte fails every file operation. TorchServe checks nothing here; its
    archiver allows only ``[A-Za-z0-9][A-Za-z0-9_.-]*``, which this check never refuses.
    """
    if not re.fullmatch(PATH_SEGMENT_PATTERN, value):
        raise BadRequestException(
            f"Invalid {what} {value!r}: it must not be empty, '.' or '..', or contain '/', "
            "'\\' or control characters"
        )
