"""Triton's ``triton_python_backend_utils`` as modelserve provides it to Python-backend models.

``fixtures/triton_python/helpers_model.py`` is a Triton model.py that uses every helper; it is
loaded as the worker loads a user's file (from its path, with enable_triton_compat) and each
helper is checked, mostly through the model, against what Triton documents. Error messages
are Triton's own where Triton defines them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from modelserve.worker.triton_compat import TRITON_COMPAT_DIR, enable_triton_compat

FIXTURES = Path(__file__).parent / "fixtures" / "triton_python"


@pytest.fixture(scope="module")
def loaded() -> Iterator[dict[str, ModuleType]]:
    """The fixture model.py files, imported the way the worker imports a user's model.py."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "path", list(sys.path))  # enable_triton_compat's entry goes after
        patch.delitem(sys.modules, "triton_python_backend_utils", raising=False)
        assert enable_triton_compat()
        modules = {}
        for name in ("helpers_model", "async_bls_model"):
            spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[name] = module
        yield modules
        sys.modules.pop("triton_python_backend_utils", None)


@pytest.fixture
def pb_utils(loaded: dict[str, ModuleType]) -> Iterator[Any]:
    """The module the models imported; no BLS executor unless a test installs one."""
    module = loaded["helpers_model"].pb_utils
    yield module
    module.set_bls_executor(None)


BASE_CONFIG = {
    "name": "helpers",
    "max_batch_size": 0,
    "input": [{"name": "IN", "data_type": "TYPE_INVALID", "dims": []}],
    "output": [],
}


@pytest.fixture
def model(loaded: dict[str, ModuleType], pb_utils: Any) -> Any:
    """helpers_model initialised on the configuration its auto_complete_config completes."""
    model_class = loaded["helpers_model"].TritonPythonModel
    config = model_class.auto_complete_config(pb_utils.ModelConfig(json.dumps(BASE_CONFIG)))
    instance = model_class()
    instance.initialize(
        {
            "model_config": json.dumps(config.as_dict()),
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
            "model_repository": str(FIXTURES),
            "model_version": "1",
            "model_name": "helpers",
        }
    )
    return instance


def request(pb_utils: Any, op: str, inputs: dict[str, np.ndarray], **fields: Any) -> Any:
    """A request as modelserve builds one for a client, for ``op`` with ``inputs``."""
    parameters = {"op": op, **fields.pop("parameters", {})}
    return pb_utils.InferenceRequest.from_client(
        inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()],
        model_name="helpers",
        model_version=1,
        parameters=parameters,
        **fields,
    )


def run(model: Any, *requests: Any) -> list[Any]:
    responses = model.execute(list(requests))
    assert len(responses) == len(requests)
    return responses


class FakeServer:
    """A BLS executor over two models, "double" and "triple", that records what it is asked."""

    def __init__(self, pb_utils: Any) -> None:
        self.pb_utils = pb_utils
        self.requests: list[Any] = []
        self.calls: list[tuple[Any, ...]] = []
        self.ready: set[str] = set()
        self.in_flight = 0
        self.all_in_flight = asyncio.Event()
        self.expected_in_flight = 1

    def execute(self, request: Any) -> Any:
        self.requests.append(request)
        factor = {"double": 2, "triple": 3}.get(request.model_name())
        if factor is None:
            raise LookupError(f"Request for unknown model: '{request.model_name()}' is not found")
        values = self.pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
        return self.pb_utils.InferenceResponse([self.pb_utils.Tensor("OUT", values * factor)])

    async def async_execute(self, request: Any) -> Any:
        # Each call waits until the expected number of calls are in flight together.
        self.in_flight += 1
        if self.in_flight == self.expected_in_flight:
            self.all_in_flight.set()
        await asyncio.wait_for(self.all_in_flight.wait(), timeout=10)
        return self.execute(request)

    def load_model(self, model_name: str, config: str, files: dict[str, bytes] | None) -> None:
        self.calls.append(("load", model_name, config, files))
        if model_name == "broken":
            raise RuntimeError("load failed: no such backend")
        self.ready.add(model_name)

    def unload_model(self, model_name: str, unload_dependents: bool) -> None:
        self.calls.append(("unload", model_name, unload_dependents))
        self.ready.discard(model_name)

    def is_model_ready(self, model_name: str, model_version: int) -> bool:
        self.calls.append(("ready", model_name, model_version))
        return model_name in self.ready


def _python(code: str, pythonpath: Path | None = None) -> str:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- the module itself -----------------------------------------------------------------------


def test_models_import_the_compat_module_as_top_level(loaded: dict[str, ModuleType]) -> None:
    pb_utils = loaded["helpers_model"].pb_utils
    assert pb_utils.__name__ == "triton_python_backend_utils"
    assert pb_utils is sys.modules["triton_python_backend_utils"]
    assert loaded["async_bls_model"].pb_utils is pb_utils
    assert Path(pb_utils.__file__).parent == TRITON_COMPAT_DIR


def test_an_installed_triton_module_keeps_precedence(tmp_path: Path) -> None:
    (tmp_path / "triton_python_backend_utils.py").write_text("REAL = True\n")
    output = _python(
        """
        from modelserve.worker.triton_compat import enable_triton_compat
        assert not enable_triton_compat()
        import triton_python_backend_utils
        print(triton_python_backend_utils.REAL)
        """,
        pythonpath=tmp_path,
    )
    assert output == "True"


def test_the_module_needs_only_the_standard_library_and_numpy() -> None:
    # modelserve and torch are made unimportable; the module must still load and work.
    output = _python(
        f"""
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("modelserve", "torch"):
                    raise ImportError("refused: " + name)
                return None

        sys.meta_path.insert(0, Refuse())
        sys.path.append({str(TRITON_COMPAT_DIR)!r})
        import numpy as np
        import triton_python_backend_utils as pb_utils

        tensor = pb_utils.Tensor("x", np.arange(3, dtype=np.float32))
        back = pb_utils.Tensor.from_dlpack("y", tensor.to_dlpack())
        print(back.as_numpy().tolist(), pb_utils.serialize_byte_tensor(np.array([b"a"], object)))
        """
    )
    assert output == "[0.0, 1.0, 2.0] b'\\x01\\x00\\x00\\x00a'"


def test_flag_and_type_constants_have_tritons_values(pb_utils: Any) -> None:
    assert pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START == 1
    assert pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END == 2
    assert pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL == 1
    assert pb_utils.TRITONSERVER_REQUEST_RELEASE_ALL == 1
    assert pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE == 2
    assert (pb_utils.TRITONSERVER_MEMORY_GPU, pb_utils.TRITONSERVER_MEMORY_CPU) == (0, 1)
    names = "INVALID BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64"
    for value, name in enumerate([*names.split(), "BYTES", "BF16"]):
        assert getattr(pb_utils, f"TRITONSERVER_TYPE_{name}") == value


# --- auto_complete_config: ModelConfig ---------------------------------------------------------


def test_auto_complete_config_completes_the_configuration(
    loaded: dict[str, ModuleType], pb_utils: Any
) -> None:
    model_class = loaded["helpers_model"].TritonPythonModel
    config = pb_utils.ModelConfig(json.dumps(BASE_CONFIG))
    completed = model_class.auto_complete_config(config).as_dict()

    # IN was configured without a type or dims: add_input completes it rather than adding one.
    assert completed["input"] == [
        {"name": "IN", "data_type": "TYPE_FP32", "dims": [-1]},
        {"name": "TEXT", "data_type": "TYPE_STRING", "dims": [-1], "optional": True},
    ]
    assert [o["name"] for o in completed["output"]] == ["OUT", "TEXT_OUT", "ENCODED", "INFO"]
    assert completed["max_batch_size"] == 8
    assert completed["dynamic_batching"] == {}
    assert completed["model_transaction_policy"] == {"decoupled": False}
    assert config.as_dict() is completed  # as_dict is the configuration itself


def _config(**fields: Any) -> Any:
    return json.dumps({**BASE_CONFIG, **fields})


@pytest.mark.parametrize(
    ("config", "call", "message"),
    [
        (
            _config(),
            lambda c: c.add_input({"name": "X", "data_type": "TYPE_FP32", "dims": [1], "shape": 1}),
            "input 'X' in auto-complete-config function for model 'helpers' contains property "
            "other than 'name', 'data_type', 'dims' and 'optional'.",
        ),
        (
            _config(),
            lambda c: c.add_input({"data_type": "TYPE_FP32", "dims": [1]}),
            "input in auto-complete-config function for model 'helpers' is missing 'name' "
            "property.",
        ),
        (
            _config(),
            lambda c: c.add_input({"name": "X", "dims": [1]}),
            "input 'X' in auto-complete-config function for model 'helpers' is missing "
            "'data_type' property.",
        ),
        (
            _config(),
            lambda c: c.add_output({"name": "Y", "data_type": "TYPE_FP32"}),
            "output 'Y' in auto-complete-config function for model 'helpers' is missing 'dims' "
            "property.",
        ),
        (
            _config(),
            lambda c: c.add_output(
                {"name": "Y", "data_type": "TYPE_FP32", "dims": [1], "optional": True}
            ),
            "output 'Y' in auto-complete-config function for model 'helpers' contains property "
            "other than 'name', 'data_type' and 'dims'.",
        ),
        (
            _config(input=[{"name": "IN", "data_type": "TYPE_INT32", "dims": [4]}]),
            lambda c: c.add_input({"name": "IN", "data_type": "TYPE_FP32", "dims": [4]}),
            "unable to load model 'helpers', configuration expects datatype TYPE_INT32 for input "
            "'IN', model provides TYPE_FP32",
        ),
        (
            _config(output=[{"name": "OUT", "data_type": "TYPE_FP32", "dims": [4]}]),
            lambda c: c.add_output({"name": "OUT", "data_type": "TYPE_FP32", "dims": [2, 2]}),
            "model 'helpers', tensor 'OUT': the model expects dims [2, 2] but the model "
            "configuration specifies dims [4]",
        ),
        (
            _config(
                input=[{"name": "IN", "data_type": "TYPE_FP32", "dims": [4], "optional": False}]
            ),
            lambda c: c.add_input(
                {"name": "IN", "data_type": "TYPE_FP32", "dims": [4], "optional": True}
            ),
            "model 'helpers', tensor 'IN': the model expects optional True but the model "
            "configuration specifies optional False",
        ),
        (
            _config(max_batch_size=16),
            lambda c: c.set_max_batch_size(8),
            "configuration specified max_batch_size 16, but in auto-complete-config function for "
            "model 'helpers' specified max_batch_size 8",
        ),
        (
            _config(sequence_batching={}),
            lambda c: c.set_dynamic_batching(),
            "Configuration specified scheduling_choice as 'sequence_batching', but "
            "auto-complete-config function for model 'helpers' tries to set scheduling_choice as "
            "'dynamic_batching'",
        ),
        (
            _config(),
            lambda c: c.set_model_transaction_policy({"decoupled": True, "streaming": True}),
            "model transaction property in auto-complete-config function for model 'helpers' "
            "contains property other than 'decoupled'.",
        ),
        (
            _config(model_transaction_policy={"decoupled": True}),
            lambda c: c.set_model_transaction_policy({"decoupled": False}),
            "trying to change decoupled property in auto-complete-config for model 'helpers', "
            "which is already set to 'True'.",
        ),
    ],
)
def test_model_config_refuses_contradictions_in_tritons_words(
    pb_utils: Any, config: str, call: Any, message: str
) -> None:
    before = json.loads(config)
    model_config = pb_utils.ModelConfig(config)
    with pytest.raises(ValueError) as raised:
        call(model_config)
    assert str(raised.value) == message
    assert model_config.as_dict() == before


def test_model_config_keeps_what_agrees(pb_utils: Any) -> None:
    config = pb_utils.ModelConfig(
        _config(max_batch_size=4, model_transaction_policy={"decoupled": False})
    )
    config.set_max_batch_size(4)  # equal is no contradiction
    config.set_model_transaction_policy({"decoupled": False})
    config.add_input({"name": "IN", "data_type": "TYPE_FP32", "dims": [3]})
    config.add_input({"name": "IN", "data_type": "TYPE_FP32", "dims": [3], "optional": True})
    assert config.as_dict()["input"] == [
        {"name": "IN", "data_type": "TYPE_FP32", "dims": [3], "optional": True}
    ]
    assert config.as_dict()["max_batch_size"] == 4


# --- configuration lookups ---------------------------------------------------------------------


def test_get_input_config_by_name(model: Any, pb_utils: Any) -> None:
    assert model.text_config == {
        "name": "TEXT",
        "data_type": "TYPE_STRING",
        "dims": [-1],
        "optional": True,
    }
    assert pb_utils.get_input_config_by_name(model.model_config, "NOPE") is None
    assert pb_utils.get_input_config_by_name({}, "TEXT") is None


def test_get_output_config_by_name(model: Any, pb_utils: Any) -> None:
    assert pb_utils.get_output_config_by_name(model.model_config, "ENCODED") == {
        "name": "ENCODED",
        "data_type": "TYPE_UINT8",
        "dims": [-1],
    }
    assert pb_utils.get_output_config_by_name(model.model_config, "IN") is None  # an input
    assert pb_utils.get_output_config_by_name({}, "OUT") is None


def test_using_decoupled_model_transaction_policy(pb_utils: Any) -> None:
    policy = pb_utils.using_decoupled_model_transaction_policy
    assert policy({"model_transaction_policy": {"decoupled": True}}) is True
    assert policy({"model_transaction_policy": {"decoupled": False}}) is False
    assert policy({}) is False


def test_a_decoupled_configuration_fails_the_models_initialize(
    loaded: dict[str, ModuleType], pb_utils: Any
) -> None:
    config = json.dumps({**BASE_CONFIG, "model_transaction_policy": {"decoupled": True}})
    with pytest.raises(pb_utils.TritonModelException, match="answers once per request"):
        loaded["helpers_model"].TritonPythonModel().initialize(
            {"model_config": config, "model_name": "helpers"}
        )


# --- data types ------------------------------------------------------------------------------

TYPES = [
    ("TYPE_BOOL", 1, np.bool_),
    ("TYPE_UINT8", 2, np.uint8),
    ("TYPE_UINT16", 3, np.uint16),
    ("TYPE_UINT32", 4, np.uint32),
    ("TYPE_UINT64", 5, np.uint64),
    ("TYPE_INT8", 6, np.int8),
    ("TYPE_INT16", 7, np.int16),
    ("TYPE_INT32", 8, np.int32),
    ("TYPE_INT64", 9, np.int64),
    ("TYPE_FP16", 10, np.float16),
    ("TYPE_FP32", 11, np.float32),
    ("TYPE_FP64", 12, np.float64),
    ("TYPE_STRING", 13, np.object_),
]


def test_triton_string_to_numpy(model: Any, pb_utils: Any) -> None:
    assert model.out_dtype is np.float32  # from the configuration's TYPE_FP32
    assert model.encoded_dtype is np.uint8
    for config_type, _, numpy_type in TYPES:
        expected = bool if config_type == "TYPE_BOOL" else numpy_type  # Triton's table has bool
        assert pb_utils.triton_string_to_numpy(config_type) is expected
    with pytest.raises(KeyError):
        pb_utils.triton_string_to_numpy("TYPE_BF16")


def test_triton_to_numpy_type(pb_utils: Any) -> None:
    for _, number, numpy_type in TYPES:
        assert pb_utils.triton_to_numpy_type(number) is numpy_type
    assert pb_utils.triton_to_numpy_type(0) is None  # INVALID
    assert pb_utils.triton_to_numpy_type(14) is None  # BF16: numpy has none


def test_numpy_to_triton_type(pb_utils: Any) -> None:
    for _, number, numpy_type in TYPES:
        assert pb_utils.numpy_to_triton_type(numpy_type) == number
        assert pb_utils.numpy_to_triton_type(np.dtype(numpy_type)) == number
    assert pb_utils.numpy_to_triton_type(np.bytes_) == 13
    assert pb_utils.numpy_to_triton_type(np.dtype("S5")) == 13
    assert pb_utils.numpy_to_triton_type(np.str_) is None
    assert pb_utils.numpy_to_triton_type(np.complex64) is None
    assert pb_utils.numpy_to_triton_type(None) is None


# --- BYTES tensors -----------------------------------------------------------------------------


def test_serialize_byte_tensor_writes_length_prefixed_elements(model: Any, pb_utils: Any) -> None:
    text = np.array([[b"ab", b""], ["é".encode(), b"\x00z\x00"]], dtype=np.object_)
    (response,) = run(model, request(pb_utils, "text", {"TEXT": text}))
    encoded = pb_utils.get_output_tensor_by_name(response, "ENCODED").as_numpy()
    assert encoded.dtype == np.uint8
    assert encoded.tobytes() == (
        b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
        b"\x03\x00\x00\x00\x00z\x00"
    )
    # ... and deserialize_bytes_tensor reads it back element for element, in C order.
    decoded = pb_utils.get_output_tensor_by_name(response, "TEXT_OUT").as_numpy()
    assert decoded.dtype == np.object_
    assert decoded.tolist() == text.tolist()


def test_serialize_byte_tensor_encodes_other_elements_as_utf8_text(pb_utils: Any) -> None:
    assert pb_utils.serialize_byte_tensor(np.array(["π", 7], dtype=np.object_)) == (
        b"\x02\x00\x00\x00\xcf\x80\x01\x00\x00\x007"
    )
    assert pb_utils.serialize_byte_tensor(np.array([b"s", b"tt"])) == b"\x01\0\0\0s\x02\0\0\0tt"
    assert pb_utils.serialize_byte_tensor(np.array([], dtype=np.object_)) == b""
    assert pb_utils.serialize_byte_tensor(np.arange(3)) is None  # not a BYTES array


def test_deserialize_bytes_tensor(pb_utils: Any) -> None:
    decoded = pb_utils.deserialize_bytes_tensor(b"\x01\x00\x00\x00a\x00\x00\x00\x00")
    assert decoded.dtype == np.object_ and decoded.tolist() == [b"a", b""]
    assert pb_utils.deserialize_bytes_tensor(b"").shape == (0,)
    with pytest.raises(pb_utils.TritonModelException, match="incomplete length field"):
        pb_utils.deserialize_bytes_tensor(b"\x01\x00\x00\x00a\x01\x00")
    with pytest.raises(pb_utils.TritonModelException, match="string extends beyond buffer"):
        pb_utils.deserialize_bytes_tensor(b"\x05\x00\x00\x00abc")


def test_an_absent_optional_input_is_none_to_the_model(model: Any, pb_utils: Any) -> None:
    (response,) = run(model, request(pb_utils, "text", {"IN": np.zeros(1, np.float32)}))
    assert response.has_error()
    assert response.error().message() == "op text needs TEXT"
    assert response.error().code() == pb_utils.TritonError.INVALID_ARG


# --- tensors -----------------------------------------------------------------------------------


def test_tensor_holds_a_named_numpy_array(pb_utils: Any) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = pb_utils.Tensor("X", array)
    assert tensor.name() == "X"
    assert tensor.as_numpy() is array
    assert tensor.shape() == [2, 3]
    assert tensor.triton_dtype() == pb_utils.TRITONSERVER_TYPE_FP32
    assert tensor.is_cpu()

    transposed = pb_utils.Tensor("T", array.T)  # made C-contiguous, as Triton does
    assert transposed.as_numpy().flags.c_contiguous
    assert transposed.as_numpy().tolist() == array.T.tolist()
    assert pb_utils.Tensor("S", np.array([b"a"], dtype=np.object_)).triton_dtype() == 13
    assert pb_utils.Tensor("L", [1, 2]).as_numpy().tolist() == [1, 2]


def test_tensor_refuses_what_triton_refuses(pb_utils: Any) -> None:
    with pytest.raises(pb_utils.TritonModelException, match=r"^Tensor name cannot be an empty"):
        pb_utils.Tensor("", np.zeros(1))
    with pytest.raises(pb_utils.TritonModelException, match=r"^NumPy dtype is not supported\.$"):
        pb_utils.Tensor("U", np.array(["text"]))  # a unicode array: BYTES wants bytes


def test_to_dlpack_and_from_dlpack_share_memory_with_torch(model: Any, pb_utils: Any) -> None:
    values = np.array([1.0, 2.0], dtype=np.float32)
    for via in ("object", "capsule"):
        given = values.copy()
        (response,) = run(
            model, request(pb_utils, "dlpack", {"IN": given}, parameters={"via": via})
        )
        # The model scaled the torch view of its input in place: to_dlpack did not copy.
        assert given.tolist() == [10.0, 20.0]
        out = pb_utils.get_output_tensor_by_name(response, "OUT")
        assert out.as_numpy().tolist() == [30.0, 60.0]
        assert out.triton_dtype() == pb_utils.TRITONSERVER_TYPE_FP32

    source = torch.arange(4, dtype=torch.int16)
    from_object = pb_utils.Tensor.from_dlpack("A", source)
    from_capsule = pb_utils.Tensor.from_dlpack("B", torch.utils.dlpack.to_dlpack(source))
    source[0] = 99
    assert from_object.as_numpy()[0] == 99 and from_capsule.as_numpy()[0] == 99
    assert from_object.triton_dtype() == pb_utils.TRITONSERVER_TYPE_INT16


def test_a_dlpack_capsule_of_a_tensor_round_trips(pb_utils: Any) -> None:
    original = pb_utils.Tensor("A", np.arange(6, dtype=np.int64).reshape(3, 2))
    capsule = original.to_dlpack()
    again = pb_utils.Tensor.from_dlpack("B", capsule)
    assert again.name() == "B" and again.shape() == [3, 2]
    assert np.shares_memory(again.as_numpy(), original.as_numpy())
    with pytest.raises(pb_utils.TritonModelException, match="consumed already"):
        pb_utils.Tensor.from_dlpack("C", capsule)  # a capsule makes one tensor only
    assert torch.from_dlpack(original).tolist() == [[0, 1], [2, 3], [4, 5]]  # __dlpack__

    read_only = np.arange(3.0)
    read_only.flags.writeable = False
    exported = torch.from_dlpack(pb_utils.Tensor("R", read_only).to_dlpack())
    assert exported.tolist() == [0.0, 1.0, 2.0]  # a copy: numpy exports no read-only memory


def test_dlpack_refuses_strings_strided_tensors_and_other_objects(pb_utils: Any) -> None:
    with pytest.raises(pb_utils.TritonModelException, match=r"^DLPack does not have support"):
        pb_utils.Tensor("S", np.array([b"x"], dtype=np.object_)).to_dlpack()
    strided = torch.arange(6.0).reshape(2, 3).t()
    for source in (strided, torch.utils.dlpack.to_dlpack(strided)):
        with pytest.raises(pb_utils.TritonModelException, match=r"^DLPack tensor is not contig"):
            pb_utils.Tensor.from_dlpack("T", source)
    with pytest.raises(pb_utils.TritonModelException, match=r"^Provided tensor is not supported"):
        pb_utils.Tensor.from_dlpack("L", [1, 2])
    with pytest.raises(pb_utils.TritonModelException, match=r"^Tensor name cannot be an empty"):
        pb_utils.Tensor.from_dlpack("", torch.zeros(1))


def test_bfloat16_tensors_exist_only_through_dlpack(pb_utils: Any) -> None:
    source = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    for given in (source, torch.utils.dlpack.to_dlpack(source)):
        tensor = pb_utils.Tensor.from_dlpack("H", given)
        assert tensor.triton_dtype() == pb_utils.TRITONSERVER_TYPE_BF16
        assert tensor.shape() == [2]
        with pytest.raises(pb_utils.TritonModelException, match=r"^Tensor dtype is BF16"):
            tensor.as_numpy()
        back = torch.from_dlpack(tensor.to_dlpack())
        assert back.dtype == torch.bfloat16 and back.tolist() == [1.5, -2.0]


def test_gpu_tensors_are_copied_to_the_host_through_torch(
    pb_utils: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No GPU here: a producer that says it is on CUDA device 0, and torch.from_dlpack answering
    # for it with a tensor, stand in for a CUDA tensor.
    on_device = torch.tensor([4.0, 5.0])

    class CudaProducer:
        def __dlpack__(self, stream: Any = None) -> Any:
            raise AssertionError("a GPU tensor is taken by torch.from_dlpack, not numpy")

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)  # kDLCUDA

    producer = CudaProducer()
    imported = []
    monkeypatch.setattr(torch, "from_dlpack", lambda p: imported.append(p) or on_device)
    tensor = pb_utils.Tensor.from_dlpack("G", producer)
    assert imported == [producer]
    assert tensor.is_cpu() and tensor.as_numpy().tolist() == [4.0, 5.0]

    monkeypatch.setitem(sys.modules, "torch", None)  # PyTorch not installed
    with pytest.raises(pb_utils.TritonModelException, match="needs PyTorch"):
        pb_utils.Tensor.from_dlpack("G", producer)


# --- requests ----------------------------------------------------------------------------------


def test_a_client_request_answers_tritons_accessors(model: Any, pb_utils: Any) -> None:
    def info(**fields: Any) -> dict[str, Any]:
        (response,) = run(
            model, request(pb_utils, "info", {"IN": np.zeros((2, 3), np.float32)}, **fields)
        )
        assert json.loads(response.parameters()) == {"op": "info", "n": 1}
        return json.loads(pb_utils.get_output_tensor_by_name(response, "INFO").as_numpy()[0])

    flags = pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
    seen = info(
        request_id="r-7",
        correlation_id=42,
        flags=flags,
        timeout=5000,
        requested_output_names=["OUT", "INFO"],
        parameters={"temperature": 0.5, "stream": False},
    )
    assert seen == {
        "request_id": "r-7",
        "correlation_id": 42,
        "flags": flags,
        "timeout": 5000,
        "requested_output_names": ["INFO", "OUT"],
        # A JSON string, compact as Triton writes a client's parameters; floats are kept.
        "parameters": '{"op":"info","temperature":0.5,"stream":false}',
        "inputs": [["IN", 11, [2, 3], True]],
    }
    assert info(correlation_id="session-a")["correlation_id"] == "session-a"
    defaults = info()
    assert (defaults["request_id"], defaults["correlation_id"], defaults["flags"]) == ("", 0, 0)
    assert defaults["requested_output_names"] == []

    built = request(pb_utils, "info", {})
    assert (built.model_name(), built.model_version()) == ("helpers", 1)
    assert built.trace().get_context() is None


def test_get_input_tensor_by_name(pb_utils: Any) -> None:
    built = request(pb_utils, "scale", {"A": np.zeros(1), "B": np.ones(1)})
    assert pb_utils.get_input_tensor_by_name(built, "B").as_numpy().tolist() == [1.0]
    assert pb_utils.get_input_tensor_by_name(built, "C") is None


def test_get_output_tensor_by_name(model: Any, pb_utils: Any) -> None:
    (response,) = run(model, request(pb_utils, "scale", {"IN": np.array([1.5], np.float32)}))
    out = pb_utils.get_output_tensor_by_name(response, "OUT")
    assert out.as_numpy().tolist() == [3.0]
    assert out.as_numpy().dtype == np.float32
    assert pb_utils.get_output_tensor_by_name(response, "INFO") is None


def test_is_cancelled_follows_the_client(model: Any, pb_utils: Any) -> None:
    kept = request(pb_utils, "scale", {"IN": np.ones(1, np.float32)})
    cancelled = request(pb_utils, "scale", {"IN": np.ones(1, np.float32)})
    assert not cancelled.is_cancelled()
    cancelled.mark_cancelled()
    assert cancelled.is_cancelled() and cancelled.get_response_sender().is_cancelled()
    answered, refused = run(model, kept, cancelled)
    assert not answered.has_error()
    assert refused.error().code() == pb_utils.TritonError.CANCELLED
    assert refused.error().message() == "cancelled by the client"


def test_a_bls_request_is_built_as_in_triton(pb_utils: Any) -> None:
    tensor = pb_utils.Tensor("IN", np.zeros(1))
    built = pb_utils.InferenceRequest(
        model_name=b"double",  # read from a BYTES tensor, as Triton's BLS example does
        inputs=[tensor],
        requested_output_names=["OUT"],
        parameters={"key": "value", "n": 3, "flag": True},
    )
    assert built.model_name() == "double"
    assert (built.request_id(), built.correlation_id(), built.flags(), built.timeout()) == (
        "",
        0,
        0,
        0,
    )
    assert built.model_version() == -1
    assert built.parameters() == '{"key": "value", "n": 3, "flag": true}'
    assert pb_utils.InferenceRequest("", 0, [tensor], ["OUT"], "m").parameters() == "{}"
    assert built.requested_output_names() == {"OUT"}
    assert built.inputs()[0] is tensor
    assert not built.is_cancelled()


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"model_name": None}, TypeError, "missing required argument: 'model_name'"),
        ({"inputs": None}, TypeError, "missing required argument: 'inputs'"),
        ({"requested_output_names": "OUT"}, TypeError, "not one name"),
        ({"parameters": {"k": 1.5}}, "TritonModelException", "found type <class 'float'>"),
        ({"parameters": {1: "v"}}, "TritonModelException", "keys to have type str"),
        ({"parameters": ["k"]}, "TritonModelException", "Expect dict, got <class 'list'>"),
        ({"correlation_id": 1.5}, "TritonModelException", "Correlation ID must be integer or"),
        ({"correlation_id": -1}, "TritonModelException", "must be an unsigned integer or"),
        (
            {"requested_output_names": [""], "request_id": "7"},
            "TritonModelException",
            "Requested output name for request with id '7' and model name 'm' should not be empty.",
        ),
        (
            {"inputs": [None]},
            "TritonModelException",
            "Input tensor for request with id '' and model name 'm' should not be empty.",
        ),
    ],
)
def test_a_bls_request_refuses_what_triton_refuses(
    pb_utils: Any, fields: dict[str, Any], error: Any, message: str
) -> None:
    arguments = {"model_name": "m", "inputs": [], "requested_output_names": [], **fields}
    error = getattr(pb_utils, error) if isinstance(error, str) else error
    with pytest.raises(error) as raised:
        pb_utils.InferenceRequest(**arguments)
    assert message in str(raised.value)


def test_only_release_all_is_supported(pb_utils: Any) -> None:
    built = request(pb_utils, "scale", {})
    built.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_ALL)
    with pytest.raises(pb_utils.TritonModelException, match="iterative sequence batching"):
        built.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)


# --- responses, errors and the response sender -----------------------------------------------


def test_inference_response(pb_utils: Any) -> None:
    out = pb_utils.Tensor("OUT", np.zeros(1))
    response = pb_utils.InferenceResponse([out], parameters={"model": "m", "final": True})
    assert response.output_tensors() == [out]
    assert not response.has_error() and response.error() is None
    assert response.parameters() == '{"model": "m", "final": true}'
    assert pb_utils.InferenceResponse().output_tensors() == []
    assert pb_utils.InferenceResponse().parameters() == "{}"

    error = pb_utils.TritonError("broken")
    failed = pb_utils.InferenceResponse(error=error)
    assert failed.has_error() and failed.error() is error
    with pytest.raises(pb_utils.TritonModelException, match="found type <class 'list'>"):
        pb_utils.InferenceResponse(parameters={"k": [1]})
    with pytest.raises(pb_utils.TritonModelException, match="should not be empty"):
        pb_utils.InferenceResponse([None])
    with pytest.raises(TypeError):
        pb_utils.InferenceResponse(error="broken")


def test_triton_error_codes_and_messages(pb_utils: Any) -> None:
    names = (
        "UNKNOWN INTERNAL NOT_FOUND INVALID_ARG UNAVAILABLE UNSUPPORTED ALREADY_EXISTS CANCELLED"
    )
    for value, name in enumerate(names.split()):
        assert getattr(pb_utils.TritonError, name) == value
        error = pb_utils.TritonError(f"{name} happened", getattr(pb_utils.TritonError, name))
        assert error.message() == f"{name} happened"
        assert error.code() == value
    assert pb_utils.TritonError("default").code() == pb_utils.TritonError.INTERNAL
    assert pb_utils.TritonError("coded", code=2).code() == pb_utils.TritonError.NOT_FOUND
    with pytest.raises(ValueError):
        pb_utils.TritonError("no such code", 99)
    assert issubclass(pb_utils.TritonModelException, Exception)


def test_the_response_sender_answers_once_with_the_final_flag(model: Any, pb_utils: Any) -> None:
    sent = request(pb_utils, "send", {"IN": np.array([1.0])}, requested_output_names=["OUT"])
    assert model.execute([sent]) == [None]
    sender = sent.get_response_sender()
    assert sender.is_closed()
    # Outputs the client did not request are pruned, as Triton does.
    assert [t.name() for t in sender.response().output_tensors()] == ["OUT"]
    assert sender.response().output_tensors()[0].as_numpy().tolist() == [2.0]

    # Triton counts a response execute returns as one sent with the final flag: a second one.
    with pytest.raises(pb_utils.TritonModelException, match="cannot send more than one response"):
        sender.send(pb_utils.InferenceResponse(), pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


def test_the_response_sender_keeps_tritons_rules(pb_utils: Any) -> None:
    final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
    sender = request(pb_utils, "scale", {}).get_response_sender()
    with pytest.raises(pb_utils.TritonModelException, match=r"^Unable to send response\. Unsupp"):
        sender.send(pb_utils.InferenceResponse(), flags=4)
    with pytest.raises(pb_utils.TritonModelException, match="must be provided when the respo"):
        sender.send()
    with pytest.raises(pb_utils.TritonModelException, match="complete final before sending"):
        sender.send(flags=final)
    sender.send(pb_utils.InferenceResponse())  # the response, then a flag-only FINAL
    assert sender.response() is not None and not sender.is_closed()
    sender.send(flags=final)
    assert sender.is_closed()
    with pytest.raises(pb_utils.TritonModelException, match="has been closed"):
        sender.send(flags=final)

    bls_request = pb_utils.InferenceRequest(model_name="m", inputs=[], requested_output_names=[])
    with pytest.raises(pb_utils.TritonModelException, match="no reference to the decoupled"):
        bls_request.get_response_sender().send(pb_utils.InferenceResponse(), flags=final)


def test_a_decoupled_requests_sender_hands_each_send_on_in_order(pb_utils: Any) -> None:
    final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
    asked = request(pb_utils, "scale", {}, decoupled=True, requested_output_names=["OUT"])
    sender = asked.get_response_sender()
    with pytest.raises(pb_utils.TritonModelException, match="not connected to a client"):
        sender.send(pb_utils.InferenceResponse())
    delivered: list[tuple[Any, bool]] = []
    sender.deliver_to(lambda response, is_final: delivered.append((response, is_final)))
    for value in (1.0, 2.0):
        outputs = [pb_utils.Tensor(name, np.array([value])) for name in ("OUT", "OTHER")]
        sender.send(pb_utils.InferenceResponse(output_tensors=outputs))
    sender.send(flags=final)  # a flag-only FINAL after many responses: allowed when decoupled
    assert [is_final for _response, is_final in delivered] == [False, False, True]
    assert delivered[2][0] is None
    # Each response is pruned to the requested outputs, as a final one is.
    assert [[t.name() for t in r.output_tensors()] for r, _ in delivered[:2]] == [["OUT"]] * 2
    with pytest.raises(pb_utils.TritonModelException, match="has been closed"):
        sender.send(pb_utils.InferenceResponse())


def test_a_decoupled_request_may_end_with_no_response_at_all(pb_utils: Any) -> None:
    asked = request(pb_utils, "scale", {}, decoupled=True)
    delivered: list[tuple[Any, bool]] = []
    asked.get_response_sender().deliver_to(lambda *sent: delivered.append(sent))
    asked.get_response_sender().send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    assert delivered == [(None, True)]


def test_is_cancelled_asks_the_client_side(pb_utils: Any) -> None:
    client_left = False
    asked = request(pb_utils, "scale", {}, cancelled=lambda: client_left)
    assert not asked.is_cancelled() and not asked.get_response_sender().is_cancelled()
    client_left = True
    assert asked.is_cancelled() and asked.get_response_sender().is_cancelled()


def test_logger_writes_to_the_triton_model_logger(
    model: Any, pb_utils: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="triton.model")
    run(model, request(pb_utils, "log", {}))
    records = [r for r in caplog.records if r.name == "triton.model"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "info message"),
        (logging.WARNING, "warn message"),
        (logging.ERROR, "error message"),
        (logging.DEBUG, "verbose message"),
        (logging.WARNING, "explicit warning"),
        (logging.INFO, "default level"),
    ]
    # Each record points at the model's own line.
    assert {Path(r.pathname).name for r in records} == {"helpers_model.py"}
    assert {r.funcName for r in records} == {"_log"}
    levels = pb_utils.Logger.LogLevel
    assert [levels.INFO, levels.WARNING, levels.ERROR, levels.VERBOSE] == [0, 1, 2, 3]
    assert pb_utils.Logger.VERBOSE is levels.VERBOSE


# --- BLS and the model loading API ---------------------------------------------------------------


def test_bls_without_a_server_raises(model: Any, pb_utils: Any) -> None:
    bls = pb_utils.InferenceRequest(model_name="m", inputs=[], requested_output_names=[])
    with pytest.raises(pb_utils.TritonModelException, match="no model server is attached"):
        bls.exec()
    with pytest.raises(pb_utils.TritonModelException, match="no model server is attached"):
        pb_utils.load_model("m")


def test_bls_exec_runs_on_the_installed_executor(model: Any, pb_utils: Any) -> None:
    server = FakeServer(pb_utils)
    pb_utils.set_bls_executor(server)
    given = request(
        pb_utils,
        "bls",
        {"IN": np.array([1.0, 2.0], np.float32)},
        request_id="outer",
        correlation_id=9,
        parameters={"target": "double"},
    )
    (response,) = run(model, given)
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [2.0, 4.0]
    (inner,) = server.requests
    assert (inner.model_name(), inner.request_id(), inner.correlation_id()) == (
        "double",
        "outer",
        9,
    )
    assert inner.requested_output_names() == {"OUT"}
    assert inner.parameters() == '{"caller": "helpers_model"}'
    assert inner.preferred_memory().preferred_memory_type == pb_utils.TRITONSERVER_MEMORY_CPU
    assert inner.inputs()[0] is given.inputs()[0]

    decoupled = request(
        pb_utils, "bls", {"IN": np.array([1.0])}, parameters={"target": "triple", "decoupled": True}
    )
    (response,) = run(model, decoupled)
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [3.0]


def test_a_failed_bls_inference_is_an_error_response(model: Any, pb_utils: Any) -> None:
    pb_utils.set_bls_executor(FakeServer(pb_utils))
    failing = request(pb_utils, "bls", {"IN": np.zeros(1)}, parameters={"target": "absent"})
    (response,) = run(model, failing)  # exec did not raise: the model passes the error on
    assert response.has_error()
    assert response.error().message() == "Request for unknown model: 'absent' is not found"
    assert response.error().code() == pb_utils.TritonError.INTERNAL


def test_a_triton_model_exception_of_the_executor_reaches_the_model(pb_utils: Any) -> None:
    class Refusing(FakeServer):
        def execute(self, request: Any) -> Any:
            raise self.pb_utils.TritonModelException("BLS is only supported during execute")

    pb_utils.set_bls_executor(Refusing(pb_utils))
    bls = pb_utils.InferenceRequest(model_name="double", inputs=[], requested_output_names=[])
    with pytest.raises(pb_utils.TritonModelException, match="only supported during execute"):
        bls.exec()


def test_response_iterator_of_a_decoupled_exec(pb_utils: Any) -> None:
    pb_utils.set_bls_executor(FakeServer(pb_utils))
    bls = pb_utils.InferenceRequest(
        model_name="double",
        inputs=[pb_utils.Tensor("IN", np.ones(1))],
        requested_output_names=["OUT"],
    )
    responses = bls.exec(decoupled=True)
    first = [r.output_tensors()[0].as_numpy().tolist() for r in responses]
    assert first == [[2.0]]
    assert [r.has_error() for r in responses] == [False]  # done: iterating again starts over
    responses.cancel()


def test_async_exec_runs_bls_requests_concurrently(
    loaded: dict[str, ModuleType], pb_utils: Any
) -> None:
    server = FakeServer(pb_utils)
    server.expected_in_flight = 2  # neither answers before both are in flight
    pb_utils.set_bls_executor(server)
    model = loaded["async_bls_model"].TritonPythonModel()

    async def main(**parameters: Any) -> Any:
        server.in_flight, server.all_in_flight = 0, asyncio.Event()
        requests = [request(pb_utils, "", {"IN": np.array([1.0])}, parameters=parameters)]
        (response,) = await model.execute(requests)
        return response

    response = asyncio.run(main(targets=["double", "triple"]))
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [5.0]
    response = asyncio.run(main(targets=["double", "triple"], decoupled=True))
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [5.0]
    response = asyncio.run(main(targets=["double", "absent"]))
    assert response.error().message() == "Request for unknown model: 'absent' is not found"

    bls = pb_utils.InferenceRequest(
        model_name="double",
        inputs=[pb_utils.Tensor("IN", np.ones(1))],
        requested_output_names=["OUT"],
    )

    async def started_at_once() -> Any:
        server.in_flight, server.all_in_flight = 0, asyncio.Event()
        server.expected_in_flight = 1
        pending = bls.async_exec()
        assert isinstance(pending, asyncio.Future)
        # In flight before anyone awaits it, as Triton's future is.
        await asyncio.wait_for(server.all_in_flight.wait(), timeout=10)
        return await pending

    response = asyncio.run(started_at_once())
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [2.0]
    with pytest.raises(RuntimeError, match="no running event loop"):
        bls.async_exec()


def test_the_model_loading_api_runs_on_the_executor(model: Any, pb_utils: Any) -> None:
    server = FakeServer(pb_utils)
    pb_utils.set_bls_executor(server)
    (response,) = run(model, request(pb_utils, "load", {}, parameters={"target": "onnx"}))
    info = pb_utils.get_output_tensor_by_name(response, "INFO").as_numpy()[0]
    assert json.loads(info) == {"ready": True}
    assert server.calls == [
        ("ready", "onnx", 1),
        ("load", "onnx", '{"backend": "onnxruntime"}', {"file:1/model.onnx": b"\x08\x07"}),
        ("ready", "onnx", -1),  # no version: the one the version policy picks
        ("unload", "onnx", True),
    ]
    assert pb_utils.load_model("plain") is None
    assert server.calls[-1] == ("load", "plain", "", None)


def test_the_model_loading_api_raises_as_triton_does(pb_utils: Any) -> None:
    pb_utils.set_bls_executor(FakeServer(pb_utils))
    exception = pb_utils.TritonModelException
    with pytest.raises(exception, match=r"^Failed to load model: load failed: no such backend$"):
        pb_utils.load_model("broken")
    with pytest.raises(exception, match="files should be a dictionary of file paths and file"):
        pb_utils.load_model("m", config="{}", files={"file:1/model.onnx": "not bytes"})
    with pytest.raises(exception, match=r"^Failed to check model readiness: failed to get model "):
        pb_utils.is_model_ready("m", model_version="latest")
    with pytest.raises(exception, match="version should be an integral value > 0"):
        pb_utils.is_model_ready("m", model_version="-2")

    class Unreachable(FakeServer):
        def unload_model(self, model_name: str, unload_dependents: bool) -> None:
            raise ConnectionError("frontend gone")

    pb_utils.set_bls_executor(Unreachable(pb_utils))
    with pytest.raises(exception, match=r"^Failed to unload model: frontend gone$"):
        pb_utils.unload_model("m")
