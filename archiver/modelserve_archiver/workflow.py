"""Workflow archives (.war): a workflow spec, its handler file of node functions and extra
files, flat in a zip with ``WAR-INF/MANIFEST.json`` as torch-workflow-archiver 0.2.15 writes
it (same keys, order, indentation and date format), so TorchServe and modelserve read either."""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ArchiverError
from .manifest import CREATED_ON_FORMAT
from .validation import MODEL_NAME_PATTERN, require_file

WORKFLOW_MANIFEST_ENTRY = "WAR-INF/MANIFEST.json"
WORKFLOW_SUFFIX = ".war"
# The manifest's archiverVersion: the torch-workflow-archiver release whose format this
# writes. Not modelserve's version: the manifest is meant to be byte-identical to that tool's
# apart from the date, and servers only check that the key is present.
WORKFLOW_FORMAT_VERSION = "0.2.15"


@dataclass(frozen=True)
class WorkflowOptions:
    """Inputs of one .war build; field names follow torch-workflow-archiver's flags.
    ``extra_files``: the comma-separated ``--extra-files`` value (files only, as that tool)."""

    workflow_name: str
    spec_file: str
    handler: str
    extra_files: str = ""
    export_path: str | Path = "."
    force: bool = False

    def output_path(self) -> Path:
        """Where the archive is written: ``<export-path>/<workflow-name>.war``."""
        return Path(self.export_path) / f"{self.workflow_name}{WORKFLOW_SUFFIX}"


def workflow_manifest(options: WorkflowOptions, now: datetime) -> bytes:
    """WAR-INF/MANIFEST.json: JSON, indent 2, no trailing newline; files by base name."""
    manifest: dict[str, Any] = {
        "createdOn": now.strftime(CREATED_ON_FORMAT),
        "workflow": {
            "workflowName": options.workflow_name,
            "specFile": os.path.basename(options.spec_file),
            "handler": os.path.basename(options.handler),
        },
        "archiverVersion": WORKFLOW_FORMAT_VERSION,
    }
    return json.dumps(manifest, indent=2).encode("utf-8")


def build_workflow_archive(options: WorkflowOptions) -> Path:
    """Write ``<workflow-name>.war`` and return its path. ArchiverError for a bad name, a
    missing input, a missing export directory or an existing output without ``force``."""
    if not MODEL_NAME_PATTERN.fullmatch(options.workflow_name):
        raise ArchiverError(
            f"invalid --workflow-name {options.workflow_name!r}: "
            f"must match ^{MODEL_NAME_PATTERN.pattern}$"
        )
    export_path = Path(options.export_path)
    if not export_path.is_dir():  # the reference tool does not create it either
        raise ArchiverError(f"--export-path is not a directory: {export_path}")
    files = _workflow_files(options)
    output = options.output_path()
    if output.exists() and not options.force:
        raise ArchiverError(f"output already exists (pass -f/--force to overwrite): {output}")
    manifest = workflow_manifest(options, datetime.now())
    staging = output.with_name(f".{output.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        with zipfile.ZipFile(staging, "x", zipfile.ZIP_DEFLATED, strict_timestamps=False) as war:
            for name, source in files.items():
                war.write(source, name)
            war.writestr(WORKFLOW_MANIFEST_ENTRY, manifest)
        os.replace(staging, output)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return output


def _workflow_files(options: WorkflowOptions) -> dict[str, Path]:
    """Archive entry → input file: each input at the archive root under its base name, as
    the reference tool copies them; two inputs with one base name would overwrite each other
    there, so they are refused here."""
    inputs = [
        ("--spec-file", options.spec_file),
        ("--handler", options.handler),
        *(("--extra-files", path) for path in options.extra_files.split(",") if path),
    ]
    files: dict[str, Path] = {}
    for flag, value in inputs:
        path = Path(value)
        require_file(flag, path)
        if path.name in files:
            raise ArchiverError(f"two inputs are named {path.name}: {files[path.name]}, {path}")
        files[path.name] = path
    return files
