"""The ``workflow-archiver`` command: torch-workflow-archiver 0.2.15's flags, one-line
errors (exit 1 for a bad input, 2 for bad usage)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import OneLineParser, fail
from .errors import ArchiverError
from .workflow import WorkflowOptions, build_workflow_archive

PROG = "workflow-archiver"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: every flag of torch-workflow-archiver 0.2.15."""
    parser = OneLineParser(
        prog=PROG,
        description="Package a workflow spec and its handler into a TorchServe workflow "
        "archive (.war).",
    )
    parser.add_argument(
        "--workflow-name",
        required=True,
        help="workflow name; must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$. The output is "
        "<workflow-name>.war under --export-path",
    )
    parser.add_argument(
        "--spec-file", required=True, help="the workflow specification (YAML: models, dag)"
    )
    # Optional in the reference tool's parser, which then fails on a missing handler;
    # a server needs it to resolve function nodes, so it is required here.
    parser.add_argument(
        "--handler",
        required=True,
        help="python file whose functions f(data, context) are the workflow's function nodes",
    )
    parser.add_argument("--extra-files", default="", help="comma-separated further files")
    parser.add_argument(
        "--export-path",
        default=".",
        help="existing directory to write the .war into (default: the current directory)",
    )
    parser.add_argument(
        "-f", "--force", action="store_true", help="overwrite an existing .war of the same name"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 1 on a bad input or failed write, 2 on bad usage."""
    args = build_parser().parse_args(argv)
    options = WorkflowOptions(
        workflow_name=args.workflow_name,
        spec_file=args.spec_file,
        handler=args.handler,
        extra_files=args.extra_files,
        export_path=args.export_path,
        force=args.force,
    )
    try:
        build_workflow_archive(options)
    except (ArchiverError, OSError) as exc:
        return fail(PROG, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
