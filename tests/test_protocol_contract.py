"""The protocol contract (``modelserve.protocol_contract``): its datatype table agrees with numpy,
``struct``, TensorFlow and the v2 gRPC protobuf; BYTES packing matches Triton's client; and the
module stays a leaf that the handlers can import without pulling in the server."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.protocol_contract import (
    BYTES,
    DATATYPES,
    TENSOR_DATATYPES,
    BytesFormatError,
    pack_bytes,
    unpack_bytes,
)

FIXED_SIZE = [name for name, row in DATATYPES.items() if row.struct_format is not None]
BYTES_CASES = {
    "no elements": [],
    "one empty element": [b""],
    "unicode text": ["héllo, wörld ✓ 你好".encode(), "🙂".encode()],
    "binary": [b"\x00\xff\x00", b"", b"\x01\x02\x03\x04" * 300],
}


def _extremes(numpy_name: str) -> list[bool | int | float]:
    """Values that tell a signed from an unsigned type, and one width from another."""
    dtype = np.dtype(numpy_name)
    if dtype.kind == "b":
        return [True, False]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return [int(info.min), int(info.max), 1]
    return [-1.5, float(np.finfo(dtype).max), 0.25]


@pytest.mark.parametrize("items", BYTES_CASES.values(), ids=BYTES_CASES.keys())
def test_bytes_round_trip(items: list[bytes]) -> None:
    packed = pack_bytes(items)
    assert len(packed) == sum(4 + len(item) for item in items)
    assert unpack_bytes(packed) == items


def test_bytes_elements_are_little_endian_length_prefixed() -> None:
    assert pack_bytes([b"ab", b""]) == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"


@pytest.mark.parametrize("items", BYTES_CASES.values(), ids=BYTES_CASES.keys())
def test_bytes_match_triton_client(items: list[bytes]) -> None:
    triton = pytest.importorskip("tritonclient.utils")
    tensor = np.empty(len(items), dtype=object)
    tensor[:] = items
    serialized = triton.serialize_byte_tensor(tensor)
    assert pack_bytes(items) == (serialized.item() if serialized.size else b"")
    if items:  # tritonclient reads an empty buffer as nothing at all
        assert list(triton.deserialize_bytes_tensor(pack_bytes(items))) == items


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x02\x00", "end inside an element's length prefix"),
        (b"\x01\x00\x00\x00a\x03\x00\x00\x00ab", "runs past the end .* says 3 bytes, 2 remain"),
    ],
)
def test_cut_bytes_data_are_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(BytesFormatError, match=problem):
        unpack_bytes(raw)


@pytest.mark.parametrize("name", FIXED_SIZE)
def test_fixed_size_rows_agree_with_numpy_and_struct(name: str) -> None:
    row = DATATYPES[name]
    assert row.numpy_name is not None and row.struct_format is not None
    dtype = np.dtype(row.numpy_name)
    assert dtype.itemsize == row.size == struct.calcsize(f"<{row.struct_format}")
    values = _extremes(row.numpy_name)
    # The same bytes from both sides: binary tensor data is written by one, read by the other.
    packed = struct.pack(f"<{len(values)}{row.struct_format}", *values)
    assert packed == np.array(values, dtype=dtype.newbyteorder("<")).tobytes()


def test_rows_without_a_fixed_layout() -> None:
    variable = {name: row for name, row in DATATYPES.items() if row.struct_format is None}
    assert set(variable) == {"BF16", BYTES}
    assert DATATYPES["BF16"].numpy_name is None and DATATYPES["BF16"].size == 2
    assert DATATYPES[BYTES].numpy_name == "object" and DATATYPES[BYTES].size is None


def test_tensor_datatypes_are_those_numpy_holds() -> None:
    assert tuple(name for name in DATATYPES if name != "BF16") == TENSOR_DATATYPES
    assert TENSOR_DATATYPES[-1] == BYTES  # listed last in error messages
    for name in TENSOR_DATATYPES:
        numpy_name = DATATYPES[name].numpy_name
        assert numpy_name is not None and np.dtype(numpy_name).name == numpy_name


def test_tf_names_are_tensorflows() -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow.core.framework import types_pb2

    special = {"BF16": tf.bfloat16, BYTES: tf.string}
    for name, row in DATATYPES.items():
        dtype = special.get(name) or tf.as_dtype(np.dtype(row.numpy_name))
        assert types_pb2.DataType.Name(dtype.as_datatype_enum) == row.tf_name, name


@pytest.mark.parametrize("name", [name for name in FIXED_SIZE if DATATYPES[name].contents_field])
def test_contents_fields_hold_their_datatype(name: str) -> None:
    row = DATATYPES[name]
    assert row.numpy_name is not None and row.contents_field is not None
    values = _extremes(row.numpy_name)
    contents = pb.InferTensorContents()
    getattr(contents, row.contents_field).extend(values)
    assert list(getattr(contents, row.contents_field)) == pytest.approx(values)


def test_every_contents_field_has_its_datatypes() -> None:
    fields = {field.name for field in pb.InferTensorContents.DESCRIPTOR.fields}
    named = {row.contents_field for row in DATATYPES.values()} - {None}
    assert named == fields
    # The proto has none for the 16-bit floats: they travel in raw_input_contents only.
    assert DATATYPES["FP16"].contents_field is None and DATATYPES["BF16"].contents_field is None


def test_the_contract_is_a_leaf() -> None:
    code = """
        import sys
        import modelserve.protocol_contract
        loaded = {name for name in sys.modules if name.partition(".")[0] == "modelserve"}
        assert loaded == {"modelserve", "modelserve.protocol_contract"}, loaded
        assert not {"numpy", "grpc", "google.protobuf"} & set(sys.modules)
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
