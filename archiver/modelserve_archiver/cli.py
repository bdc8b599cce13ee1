"""The ``model-archiver`` command: torch-model-archiver 0.12's flags, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from .builder import build_archive
from .errors import ArchiverError
from .options import ARCHIVE_FORMATS, RUNTIMES, ArchiveOptions

PROG = "model-archiver"
USAGE_ERROR = 2
INPUT_ERROR = 1


class OneLineParser(argparse.ArgumentParser):
    """Reports usage mistakes on a single stderr line instead of usage text plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every flag of torch-model-archiver 0.12 with its short forms."""
    parser = OneLineParser(
        prog=PROG,
        description="Package a model's files into a TorchServe-compatible model archive (.mar).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-name",
        required=True,
        help="model name; must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$. The output is "
        "<model-name>.mar (or .tar.gz, or a directory) under --export-path",
    )
    parser.add_argument(
        "-v", "--version", required=True, help="model version, recorded as modelVersion"
    )
    parser.add_argument(
        "--serialized-file",
        help="weights: a state_dict .pt/.pth for eager mode, a TorchScript or TensorRT "
        "file, or an .onnx file",
    )
    parser.add_argument(
        "--model-file",
        help="python file defining the model class (eager mode); it must define exactly "
        "one torch.nn.Module subclass",
    )
    parser.add_argument(
        "--handler",
        required=True,
        help="built-in handler name (base_handler, image_classifier, image_segmenter, "
        "object_detector, text_classifier, ...; not copied) or a handler file "
        "path/to/file[.py][:function] (the file is copied)",
    )
    parser.add_argument(
        "--extra-files",
        help="comma-separated files, directories or glob patterns to add; a directory's "
        "content is copied into the archive root, skipping __pycache__, __MACOSX and "
        "directories whose name starts with '.'",
    )
    parser.add_argument(
        "-r",
        "--requirements-file",
        help="requirements.txt of python packages the model needs "
        "(installed by the server when install_py_dep_per_model=true)",
    )
    parser.add_argument(
        "-c", "--config-file", help="model configuration yaml (batchSize, minWorkers, ...)"
    )
    parser.add_argument(
        "--runtime",
        default="python",
        metavar="{" + ",".join(RUNTIMES) + "}",
        help="language the handler runs in (default: python)",
    )
    parser.add_argument(
        "--export-path",
        default=".",
        help="directory to write the output into; created when missing "
        "(default: the current directory)",
    )
    parser.add_argument(
        "--archive-format",
        default="default",
        metavar="{" + ",".join(ARCHIVE_FORMATS) + "}",
        help="default: deflated zip <name>.mar; zip-store: uncompressed zip <name>.mar "
        "(faster to build); tgz: <name>.tar.gz with everything under <name>/; "
        "no-archive: plain directory <export-path>/<name>/ (default: default)",
    )
    parser.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite an existing output of the same name",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> ArchiveOptions:
    """The ArchiveOptions named by parsed command-line arguments."""
    return ArchiveOptions(
        model_name=args.model_name,
        version=args.version,
        handler=args.handler,
        serialized_file=args.serialized_file,
        model_file=args.model_file,
        extra_files=args.extra_files or "",
        requirements_file=args.requirements_file,
        config_file=args.config_file,
        runtime=args.runtime,
        export_path=args.export_path,
        archive_format=args.archive_format,
        force=args.force,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 1 on a bad input or failed write, 2 on bad usage."""
    logging.basicConfig(format=f"{PROG}: warning: %(message)s", level=logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        build_archive(options_from_args(args), progress_stream=sys.stderr)
    except (ArchiverError, OSError) as exc:
        return fail(PROG, exc)
    return 0


def fail(prog: str, exc: ArchiverError | OSError) -> int:
    """Report a failed build on one stderr line (readable in logs and CI); the exit code."""
    if isinstance(exc, ArchiverError):
        message = str(exc)
    else:
        message = f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    print(f"{prog}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return INPUT_ERROR
