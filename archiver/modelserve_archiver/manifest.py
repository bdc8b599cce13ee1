"""MAR-INF/MANIFEST.json, in torch-model-archiver 0.12's schema and key order."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from .options import ArchiveOptions

CREATED_ON_FORMAT = "%d/%m/%Y %H:%M:%S"


def build_manifest(options: ArchiveOptions, archiver_version: str, now: datetime) -> dict[str, Any]:
    """The manifest for ``options``; optional keys are absent, not null, when not given."""
    model: dict[str, Any] = {"modelName": options.model_name}
    if options.serialized_file:
        model["serializedFile"] = os.path.basename(options.serialized_file)
    model["handler"] = os.path.basename(options.handler)
    if options.model_file:
        model["modelFile"] = os.path.basename(options.model_file)
    if options.version:
        model["modelVersion"] = options.version
    if options.requirements_file:
        model["requirementsFile"] = os.path.basename(options.requirements_file)
    if options.config_file:
        model["configFile"] = os.path.basename(options.config_file)
    return {
        "createdOn": now.strftime(CREATED_ON_FORMAT),
        "runtime": options.runtime,
        "model": model,
        "archiverVersion": archiver_version,
    }


def render_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as the reference tool writes it: JSON, indent 2, no trailing newline."""
    return json.dumps(manifest, indent=2).encode("utf-8")
