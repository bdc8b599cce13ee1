"""MAR-INF/MANIFEST.json: the Manifest value and its parsing, as TorchServe 0.12 reads it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidManifestError

MANIFEST_PATH = "MAR-INF/MANIFEST.json"
RUNTIMES = ("python", "python3", "LSP")
DEFAULT_RUNTIME = "python"
DEFAULT_MODEL_VERSION = "1.0"

# Manifest field → key inside the manifest's "model" object
_MODEL_KEYS = {
    "model_name": "modelName",
    "model_version": "modelVersion",
    "handler": "handler",
    "serialized_file": "serializedFile",
    "model_file": "modelFile",
    "requirements_file": "requirementsFile",
    "config_file": "configFile",
    "envelope": "envelope",
}


@dataclass(frozen=True)
class Manifest:
    """A model archive's manifest.

    ``Manifest()`` is the empty manifest TorchServe gives a model directory without
    MAR-INF: no name (the caller supplies it), version "1.0", runtime "python".
    ``raw`` is the parsed JSON as found, including keys this class does not model.
    """

    model_name: str | None = None
    model_version: str = DEFAULT_MODEL_VERSION
    handler: str | None = None
    serialized_file: str | None = None
    model_file: str | None = None
    requirements_file: str | None = None
    config_file: str | None = None
    runtime: str = DEFAULT_RUNTIME
    created_on: str | None = None
    archiver_version: str | None = None
    description: str | None = None
    envelope: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_json(
        cls, data: bytes | str | dict[str, Any], *, origin: str = MANIFEST_PATH
    ) -> Manifest:
        """Parse a manifest; ``origin`` names it in error messages.

        Absent fields take TorchServe's defaults (modelVersion "1.0", runtime "python");
        use :meth:`validate` to require a name and a handler. Raises InvalidManifestError
        for text that is not a JSON object, or fields of the wrong type.
        """
        document = data if isinstance(data, dict) else _parse(data, origin)
        if not isinstance(document, dict):
            raise InvalidManifestError(f"{origin} is not a JSON object")
        model = document.get("model", {})
        if not isinstance(model, dict):
            raise InvalidManifestError(f'"model" in {origin} is not a JSON object')
        runtime = _text(document, "runtime", origin) or DEFAULT_RUNTIME
        if runtime not in RUNTIMES:
            raise InvalidManifestError(f"Invalid RuntimeType value: {runtime} (in {origin})")
        values = {name: _text(model, key, origin) for name, key in _MODEL_KEYS.items()}
        values["model_version"] = values["model_version"] or DEFAULT_MODEL_VERSION
        return cls(
            **values,
            runtime=runtime,
            created_on=_text(document, "createdOn", origin),
            archiver_version=_text(document, "archiverVersion", origin),
            description=_text(model, "description", origin)
            or _text(document, "description", origin),
            raw=copy.deepcopy(document),
        )

    def validate(self, origin: str = MANIFEST_PATH) -> None:
        """Raise InvalidManifestError unless the model has a name and a handler."""
        if not self.model_name:
            raise InvalidManifestError(f"Model name is not defined in {origin}")
        if not self.handler:
            raise InvalidManifestError(f"Handler is not defined in {origin}")

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data: ``raw`` with this object's values laid over it."""
        document = copy.deepcopy(self.raw)
        if not isinstance(document.get("model"), dict):
            document["model"] = {}
        for name, key in _MODEL_KEYS.items():
            value = getattr(self, name)
            if value is not None:
                document["model"][key] = value
        document["runtime"] = self.runtime
        for key, value in (
            ("createdOn", self.created_on),
            ("archiverVersion", self.archiver_version),
        ):
            if value is not None:
                document[key] = value
        return document


def _parse(data: bytes | str, origin: str) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise InvalidManifestError(f"{origin} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise InvalidManifestError(
            f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc


def _text(mapping: dict[str, Any], key: str, origin: str) -> str | None:
    """A string field; numbers are accepted as their text, as TorchServe's JSON reader does."""
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InvalidManifestError(f'"{key}" in {origin} must be a string, not {type(value).__name__}')
