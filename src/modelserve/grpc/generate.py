"""Regenerate the committed Python code of the .proto files in ``proto/``.

Run from anywhere, with grpcio-tools installed (a dev dependency)::

    python -m modelserve.grpc.generate

It runs ``grpc_tools.protoc`` with ``src`` as the import root, so the generated modules import
each other as ``modelserve.grpc.proto.*``, and writes ``*_pb2.py``, ``*_pb2.pyi`` and
``*_pb2_grpc.py`` next to the .proto files; ``open_inference_pb2`` is then moved to a
descriptor pool of its own (see ``_use_private_pool``). The generated code pins the protobuf
and grpcio versions it needs at least (those of grpcio-tools); keep pyproject.toml's minimums
in step.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "proto"
# Generated modules whose messages live in a descriptor pool of their own (no imports allowed).
PRIVATE_POOL = ("open_inference",)
SOURCE_ROOT = PROTO_DIR.parents[2]  # .../src


def main() -> int:
    """Run protoc over every .proto file; returns its exit status."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    protos = sorted(str(path.relative_to(SOURCE_ROOT)) for path in PROTO_DIR.glob("*.proto"))
    arguments = [
        "grpc_tools.protoc",
        f"-I{SOURCE_ROOT}",
        f"-I{well_known}",
        f"--python_out={SOURCE_ROOT}",
        f"--pyi_out={SOURCE_ROOT}",
        f"--grpc_python_out={SOURCE_ROOT}",
        *protos,
    ]
    status = protoc.main(arguments)
    if status == 0:
        for name in PRIVATE_POOL:
            _use_private_pool(PROTO_DIR / f"{name}_pb2.py")
    return status


def _use_private_pool(module: Path) -> None:
    """Register the module's descriptors in a pool of its own instead of protobuf's default
    one, where the same ``inference.*`` names from another package (tritonclient, kserve)
    would collide with them ("duplicate symbol") when both are imported in one process."""
    text = module.read_text()
    default = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
    if default not in text:
        raise SystemExit(f"{module}: generated code changed shape; update generate.py")
    private = (
        "# modelserve.grpc.generate: a pool of its own (see _use_private_pool there).\n"
        "DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile("
    )
    module.write_text(text.replace(default, private))


if __name__ == "__main__":
    sys.exit(main())
