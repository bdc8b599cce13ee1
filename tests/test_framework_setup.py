"""The tensor handler's framework setup from the model config's ``handler:`` section (custom
op libraries, a GPU memory limit): malformed settings name themselves, and on a GPU the limit
holds (tests marked gpu, skipped without one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from grps_support import grps_serve
from modelserve_handlers.backends import FrameworkOptions, ModelLoadError
from modelserve_handlers.backends.framework_setup import prepare_framework

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA"
)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"custom_op_libraries": "ops.so"}, "handler.custom_op_libraries must be a list"),
        ({"gpu_memory_limit_mib": 0}, "handler.gpu_memory_limit_mib must be a whole number"),
        ({"gpu_memory_devices": [0, "1"]}, "handler.gpu_memory_devices must be a list"),
        ({"gpu_memory_gc_interval_s": -1}, "handler.gpu_memory_gc_interval_s must be a positive"),
    ],
)
def test_a_malformed_setting_is_named(section: dict, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        FrameworkOptions.from_config(section, "model.pt")


def test_the_settings_are_read_and_apply_to_the_gpus_named() -> None:
    section = {
        "backend": "torchscript",  # the handler's own key, beside them
        "custom_op_libraries": ["/opt/ops.so"],
        "gpu_memory_limit_mib": 256,
        "gpu_memory_devices": [1],
        "gpu_memory_gc_interval_s": 30,
    }
    options = FrameworkOptions.from_config(section, "model.pt")
    assert options == FrameworkOptions(("/opt/ops.so",), 256, (1,), 30)
    assert [options.limited_gpu(device) for device in ("cpu", "cuda:0", "cuda:1")] == [
        None,
        None,
        1,
    ]


def test_custom_ops_for_onnx_are_refused_naming_the_frameworks_that_load_them() -> None:
    options = FrameworkOptions(custom_op_libraries=("/opt/ops.so",))
    with pytest.raises(ModelLoadError, match="loaded for TorchScript, eager PyTorch, TensorFlow"):
        prepare_framework("onnx", options, "cpu", "model.onnx")


class Allocates(torch.nn.Module):
    """Takes about 512 MiB of GPU memory for each call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones(128 * 2**20, device=x.device)
        return x + scratch[:1]


@pytest.mark.gpu
@needs_cuda
def test_the_gpu_memory_limit_holds(tmp_path: Path) -> None:
    path = tmp_path / "allocates.pt"
    torch.jit.save(torch.jit.script(Allocates()), str(path))
    answers = {}
    for limit in ("-1", "128"):
        directory = tmp_path / f"limit{limit}"
        directory.mkdir()
        flags = ["--device", "cuda:0", "--gpu_mem_limit_mib", limit, "--gpu_devices_idx", "0"]
        server = grps_serve(directory, "torch_serve", path, *flags)
        try:
            answers[limit] = server.predict({"ndarray": [[1.0]]})
        finally:
            server.stop()
    assert answers["-1"].status_code == 200, answers["-1"].text
    assert answers["128"].status_code in (400, 500)
    assert "out of memory" in answers["128"].json()["status"]["msg"].lower()
