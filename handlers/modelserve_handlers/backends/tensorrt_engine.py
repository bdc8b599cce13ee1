"""Serialized TensorRT engines, run with PyTorch CUDA tensors as device buffers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelserve_handlers.errors import BadInputError

from .artifacts import require_serialized_file
from .model import LoadedModel, ModelLoadError, TensorSpec, feed_by_name, import_framework

FRAMEWORK = "TensorRT"


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """Deserialize the engine on ``device`` (a CUDA device) with one execution context."""
    path = require_serialized_file(model_dir, manifest, FRAMEWORK)
    if not device.startswith("cuda"):
        raise ModelLoadError(
            path,
            FRAMEWORK,
            f"TensorRT engines need an NVIDIA GPU: this worker was given none (device {device!r})",
        )
    torch = import_framework("torch", "torch", path, FRAMEWORK)
    if not torch.cuda.is_available():
        raise ModelLoadError(
            path, FRAMEWORK, "TensorRT engines need an NVIDIA GPU: CUDA is not available"
        )
    trt = import_framework("tensorrt", "tensorrt", path, FRAMEWORK)
    runner = _EngineRunner(trt, torch, torch.device(device), path)
    return LoadedModel("tensorrt", runner.engine, runner.inputs, runner.outputs, runner)


class _EngineRunner:
    """An engine, its runtime and one execution context; called with numpy arrays."""

    def __init__(self, trt: Any, torch: Any, gpu: Any, path: Path) -> None:
        self._torch = torch
        self._gpu = gpu
        # Kept for the engine's lifetime: an engine must not outlive its runtime.
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with torch.cuda.device(gpu):
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:  # the reason went to TensorRT's logger: the worker log
                raise ModelLoadError(
                    path,
                    FRAMEWORK,
                    "deserialization failed (an engine runs only with the TensorRT version "
                    "and the GPU model it was built for; see the worker log)",
                )
            self._context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        specs = {name: _spec(trt, self.engine, name) for name in names}
        is_input = {
            name: self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT for name in names
        }
        self.inputs = tuple(specs[name] for name in names if is_input[name])
        self.outputs = tuple(specs[name] for name in names if not is_input[name])
        buffer_types = _torch_dtypes(trt, torch)
        self._output_dtypes = {}
        for spec in self.outputs:
            trt_dtype = self.engine.get_tensor_dtype(spec.name)
            if trt_dtype not in buffer_types:
                raise ModelLoadError(
                    path, FRAMEWORK, f"output {spec.name!r} is {trt_dtype}, unsupported here"
                )
            self._output_dtypes[spec.name] = buffer_types[trt_dtype]

    def __call__(self, feed: Any) -> dict[str, Any]:
        import numpy as np

        torch, gpu, context = self._torch, self._gpu, self._context
        named = feed_by_name(feed, [spec.name for spec in self.inputs])
        buffers: dict[str, Any] = {}
        with torch.cuda.device(gpu):
            stream = torch.cuda.current_stream(gpu)
            for spec in self.inputs:
                # Copied on the current stream, which the engine then runs on: ordered.
                tensor = torch.from_numpy(np.ascontiguousarray(named[spec.name])).to(gpu)
                if not context.set_input_shape(spec.name, tuple(tensor.shape)):
                    raise BadInputError(
                        f'input "{spec.name}": shape {tuple(tensor.shape)} is outside the '
                        "engine's optimization profile"
                    )
                buffers[spec.name] = tensor
            for spec in self.outputs:
                shape = tuple(context.get_tensor_shape(spec.name))
                if any(dim < 0 for dim in shape):
                    raise RuntimeError(
                        f"output {spec.name!r} has a data-dependent shape, which the "
                        "TensorRT backend does not support"
                    )
                dtype = self._output_dtypes[spec.name]
                buffers[spec.name] = torch.empty(shape, dtype=dtype, device=gpu)
            for name, tensor in buffers.items():
                context.set_tensor_address(name, tensor.data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed; see the worker log")
            stream.synchronize()
        return {spec.name: _to_numpy(torch, buffers[spec.name]) for spec in self.outputs}


def _spec(trt: Any, engine: Any, name: str) -> TensorSpec:
    import numpy as np

    shape = tuple(dim if dim >= 0 else None for dim in engine.get_tensor_shape(name))
    try:
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
    except TypeError:  # bfloat16, fp8 …: no numpy dtype
        dtype = None
    return TensorSpec(name, shape, dtype)


def _torch_dtypes(trt: Any, torch: Any) -> dict[Any, Any]:
    return {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.bfloat16: torch.bfloat16,
        trt.int8: torch.int8,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
        trt.uint8: torch.uint8,
    }


def _to_numpy(torch: Any, tensor: Any) -> Any:
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.float()
    return tensor.cpu().numpy()
