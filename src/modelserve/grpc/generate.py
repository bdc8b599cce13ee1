"""Check, or regenerate, the committed Python code of the .proto files in every package's
``proto/`` (gRPC's services here, the model repository's Triton config).

Run from anywhere, with grpcio-tools installed (a dev dependency)::

    python -m modelserve.grpc.generate           # check: exit 1 naming what is out of date
    python -m modelserve.grpc.generate --write   # regenerate the committed files

Both run ``grpc_tools.protoc`` with ``src`` as the import root, so the generated modules import
each other as ``modelserve.grpc.proto.*``; the modules of ``PRIVATE_POOL`` are then moved to a
descriptor pool of their own (see ``_use_private_pool``).

The check generates into a temporary directory and compares what the code describes (each
module's serialized file descriptor, and the set of modules) with the committed code, so a
grpcio-tools newer than the one that wrote the committed files does not count as a change. It
writes nothing: the generated code pins the protobuf and grpcio versions it needs at least
(those of the grpcio-tools that wrote it), so regenerating with another grpcio-tools changes
what users must install. ``--write`` says when it does; keep pyproject.toml's minimums in step.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorProto

PROTO_DIR = Path(__file__).resolve().parent / "proto"
SOURCE_ROOT = PROTO_DIR.parents[2]  # .../src
# Generated modules (under the source root) whose messages live in a descriptor pool of their
# own (their .proto may import nothing): other packages declare the same names.
PRIVATE_POOL = (
    "modelserve/grpc/proto/open_inference",
    "modelserve/grpc/proto/tf_serving",
    "modelserve/grpc/proto/paddle_pipeline",
    "modelserve/grps/proto/grps",
)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
PROTOBUF_STAMP = re.compile(r"^# Protobuf Python Version: (\S+)$", re.MULTILINE)


def generate(out_root: Path) -> int:
    """Run protoc over every .proto file, writing under ``out_root`` (a ``src``-like root);
    returns its exit status."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    protos = sorted(
        str(path.relative_to(SOURCE_ROOT))
        for directory in proto_dirs()
        for path in directory.glob("*.proto")
    )
    arguments = [
        "grpc_tools.protoc",
        f"-I{SOURCE_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    status = protoc.main(arguments)
    if status == 0:
        for name in PRIVATE_POOL:
            if (SOURCE_ROOT / f"{name}.proto").is_file():  # a partial tree (tests) may lack it
                _use_private_pool(out_root / f"{name}_pb2.py")
    return status


def proto_dirs() -> list[Path]:
    """Every package's ``proto/`` directory under the source root."""
    return sorted(SOURCE_ROOT.glob("modelserve/*/proto"))


def _use_private_pool(module: Path) -> None:
    """Register the module's descriptors in a pool of its own instead of protobuf's default
    one, where the same names from another package (``inference.*`` from tritonclient or
    kserve, ``grps.protos.v1.*`` from grps_apis) would collide with them ("duplicate symbol")
    when both are imported in one process."""
    text = module.read_text()
    default = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
    if default not in text:
        raise SystemExit(f"{module}: generated code changed shape; update generate.py")
    private = (
        "# modelserve.grpc.generate: a pool of its own (see _use_private_pool there).\n"
        "DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile("
    )
    module.write_text(text.replace(default, private))


def generated_files(directory: Path) -> set[str]:
    """The names of the generated files in ``directory``."""
    return {path.name for path in directory.iterdir() if path.name.endswith(GENERATED_SUFFIXES)}


def file_descriptor(module: Path) -> FileDescriptorProto:
    """The file descriptor a generated ``*_pb2.py`` registers, read without importing it."""
    for node in ast.walk(ast.parse(module.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return FileDescriptorProto.FromString(node.args[0].value)
    raise SystemExit(f"{module}: no serialized file descriptor found; update generate.py")


def protobuf_version(module: Path) -> str | None:
    """The protobuf version a generated ``*_pb2.py`` was written for (its header says)."""
    match = PROTOBUF_STAMP.search(module.read_text()) if module.is_file() else None
    return match.group(1) if match else None


def differences(committed: Path, fresh: Path) -> list[str]:
    """What the code in ``committed`` lacks or describes differently from ``fresh``."""
    problems = [
        f"{name}: {'missing' if name in generated_files(fresh) else 'no longer generated'}"
        for name in sorted(generated_files(committed) ^ generated_files(fresh))
    ]
    for module in sorted(fresh.glob("*_pb2.py")):
        mine = committed / module.name
        if mine.is_file() and file_descriptor(mine) != file_descriptor(module):
            problems.append(f"{module.name}: differs from {module.name[: -len('_pb2.py')]}.proto")
    return problems


def check() -> int:
    """0 when the committed code describes the .proto files as they are; else 1, naming the
    modules that differ."""
    stale = False
    with tempfile.TemporaryDirectory() as scratch:
        status = generate(Path(scratch))
        if status != 0:
            return status
        for directory in proto_dirs():
            fresh = Path(scratch) / directory.relative_to(SOURCE_ROOT)
            problems = differences(directory, fresh)
            protos = len(list(directory.glob("*.proto")))
            if not problems:
                print(f"The generated code in {directory} is up to date ({protos} .proto files).")
                continue
            stale = True
            print(f"The generated code in {directory} is out of date:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
    if stale:
        print("Regenerate it with: python -m modelserve.grpc.generate --write", file=sys.stderr)
        return 1
    return 0


def write() -> int:
    """Regenerate the committed files; say when the protobuf they require changes."""
    stamp = PROTO_DIR / "inference_pb2.py"
    before = protobuf_version(stamp)
    status = generate(SOURCE_ROOT)
    after = protobuf_version(stamp)
    if status == 0 and before != after:
        print(
            f"The generated code now requires protobuf>={after} (was {before}): "
            "keep pyproject.toml's protobuf and grpcio minimums in step.",
            file=sys.stderr,
        )
    return status


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m modelserve.grpc.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--write", action="store_true", help="regenerate the committed files (default: check)"
    )
    args = parser.parse_args(argv)
    return write() if args.write else check()


if __name__ == "__main__":
    sys.exit(main())
