"""What an archive is built from: the typed form of the command-line flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Output suffix per --archive-format, as torch-model-archiver names its outputs.
ARCHIVE_SUFFIXES: dict[str, str] = {
    "default": ".mar",
    "zip-store": ".mar",
    "tgz": ".tar.gz",
    "no-archive": "",
}
ARCHIVE_FORMATS: tuple[str, ...] = tuple(ARCHIVE_SUFFIXES)
RUNTIMES: tuple[str, ...] = ("python", "python3", "LSP")

# Handler names the server resolves itself; torch-model-archiver 0.12 does not copy them.
BUILTIN_HANDLERS: frozenset[str] = frozenset(
    {
        "base_handler",
        "text_classifier",
        "image_classifier",
        "object_detector",
        "image_segmenter",
        "dali_image_classifier",
        "vllm_handler",
        "trt_llm_handler",
        # modelserve's own built-ins: the generic tensor handler of quick deploy, the handler
        # of Triton Python-backend models (model.py) from a model repository, and the one of
        # Paddle Serving pipeline ops
        "tensor",
        "triton_python",
        "paddle_op",
    }
)
LSP_BUILTIN_HANDLERS: frozenset[str] = frozenset({"BaseHandler", "TorchScriptHandler"})


@dataclass(frozen=True)
class ArchiveOptions:
    """Inputs of one archive build; field names follow the torch-model-archiver flags.

    ``extra_files`` holds the comma-separated pieces of ``--extra-files`` (paths or globs);
    a single string is split on commas as the command line does.
    """

    model_name: str
    version: str
    handler: str
    serialized_file: str | None = None
    model_file: str | None = None
    extra_files: Sequence[str] | str = field(default_factory=tuple)
    requirements_file: str | None = None
    config_file: str | None = None
    runtime: str = "python"
    export_path: str | Path = "."
    archive_format: str = "default"
    force: bool = False

    def extra_file_specs(self) -> list[str]:
        """The ``--extra-files`` pieces, stripped, empty ones dropped."""
        pieces = self.extra_files
        if isinstance(pieces, str):
            pieces = pieces.split(",")
        return [piece.strip() for piece in pieces if piece.strip()]

    def output_path(self) -> Path:
        """Where the archive (or, for no-archive, the directory) is written."""
        suffix = ARCHIVE_SUFFIXES.get(self.archive_format, "")
        return Path(self.export_path) / f"{self.model_name}{suffix}"
