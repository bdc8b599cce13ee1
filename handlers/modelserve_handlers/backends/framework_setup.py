"""What a model's framework is set up with before the model loads: the model config's
``handler:`` entries below (the grps commands write them from grpst's flags; see
docs/configuration.md).

* ``custom_op_libraries``: shared libraries of custom operators the model needs, loaded
  first: ``torch.ops.load_library`` (TorchScript, eager), ``tf.load_op_library``
  (TensorFlow), or a TensorRT plugin library (loaded, then TensorRT's plugins registered).
* ``gpu_memory_limit_mib``: the most memory the framework may take on the worker's GPU:
  torch's per-process memory fraction, TensorFlow's logical device memory limit. Nothing on
  the CPU.
* ``gpu_memory_devices``: the GPUs the limit applies to (default: every GPU).
* ``gpu_memory_gc_interval_s``: torch on a GPU: hand cached, unused memory back to the
  driver (``torch.cuda.empty_cache``) this often.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from typing import Any

from .model import ModelLoadError, import_framework

MIB = 2**20


@dataclass(frozen=True)
class FrameworkOptions:
    """The framework setup a model config asks for; the defaults ask for none."""

    custom_op_libraries: tuple[str, ...] = ()
    gpu_memory_limit_mib: int | None = None
    gpu_memory_devices: tuple[int, ...] | None = None
    gpu_memory_gc_interval_s: float | None = None

    @classmethod
    def from_config(cls, handler_config: Any, label: str) -> FrameworkOptions:
        """The options of a model config's ``handler:`` section (other keys are the handler's
        own); ModelLoadError naming a malformed one."""
        section = handler_config if isinstance(handler_config, dict) else {}

        def fail(key: str, expected: str) -> ModelLoadError:
            return ModelLoadError(label, "the model config", f"handler.{key} must be {expected}")

        libraries = section.get("custom_op_libraries") or []
        if not isinstance(libraries, list) or not all(isinstance(p, str) for p in libraries):
            raise fail("custom_op_libraries", "a list of file paths")
        limit = section.get("gpu_memory_limit_mib")
        if limit is not None and (not _whole(limit) or limit < 1):
            raise fail("gpu_memory_limit_mib", "a whole number of MiB, at least 1")
        devices = section.get("gpu_memory_devices")
        if devices is not None and (
            not isinstance(devices, list) or not all(_whole(d) and d >= 0 for d in devices)
        ):
            raise fail("gpu_memory_devices", "a list of GPU indexes")
        interval = section.get("gpu_memory_gc_interval_s")
        if interval is not None and (not _number(interval) or interval <= 0):
            raise fail("gpu_memory_gc_interval_s", "a positive number of seconds")
        return cls(
            tuple(libraries),
            limit,
            tuple(devices) if devices is not None else None,
            interval,
        )

    def limited_gpu(self, device: str) -> int | None:
        """The GPU of ``device`` (``cuda:N``) when the memory limit applies to it."""
        kind, _, index = device.partition(":")
        if kind != "cuda" or self.gpu_memory_limit_mib is None:
            return None
        gpu = int(index or 0)
        return gpu if self.gpu_memory_devices is None or gpu in self.gpu_memory_devices else None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def prepare_framework(backend: str, options: FrameworkOptions, device: str, label: str) -> None:
    """Set up the framework of ``backend`` as ``options`` ask, before its model loads on
    ``device``; ModelLoadError naming a library that does not load."""
    if options == FrameworkOptions():
        return
    if backend in ("torchscript", "eager"):
        _prepare_torch(options, device, label)
    elif backend == "tensorflow":
        _prepare_tensorflow(options, device, label)
    elif backend == "tensorrt":
        _prepare_tensorrt(options, label)
    elif options.custom_op_libraries:
        raise ModelLoadError(
            label,
            backend,
            "custom_op_libraries are loaded for TorchScript, eager PyTorch, TensorFlow and "
            "TensorRT models only",
        )


def _prepare_torch(options: FrameworkOptions, device: str, label: str) -> None:
    torch = import_framework("torch", "torch", label, "PyTorch")
    for library in options.custom_op_libraries:
        try:
            torch.ops.load_library(library)
        except OSError as exc:
            raise ModelLoadError(label, "PyTorch", f"custom op library: {exc}") from exc
    gpu = options.limited_gpu(device)
    if gpu is not None and options.gpu_memory_limit_mib is not None:
        total = torch.cuda.get_device_properties(gpu).total_memory
        fraction = min(1.0, options.gpu_memory_limit_mib * MIB / total)
        torch.cuda.set_per_process_memory_fraction(fraction, gpu)
    interval = options.gpu_memory_gc_interval_s
    if interval is not None and device.startswith("cuda"):
        threading.Thread(
            target=_collect_gpu_memory, args=(torch, interval), name="gpu-memory-gc", daemon=True
        ).start()


def _collect_gpu_memory(torch: Any, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        torch.cuda.empty_cache()


def _prepare_tensorflow(options: FrameworkOptions, device: str, label: str) -> None:
    tf = import_framework("tensorflow", "tensorflow", label, "TensorFlow")
    for library in options.custom_op_libraries:
        try:
            tf.load_op_library(library)
        except tf.errors.NotFoundError as exc:
            raise ModelLoadError(label, "TensorFlow", f"custom op library: {exc}") from exc
    gpu = options.limited_gpu(device)
    if gpu is not None and options.gpu_memory_limit_mib is not None:
        # Before TensorFlow first touches the GPU: the model has not been loaded yet.
        physical = tf.config.list_physical_devices("GPU")[gpu]
        limit = tf.config.LogicalDeviceConfiguration(memory_limit=options.gpu_memory_limit_mib)
        tf.config.set_logical_device_configuration(physical, [limit])


def _prepare_tensorrt(options: FrameworkOptions, label: str) -> None:
    trt = import_framework("tensorrt", "tensorrt", label, "TensorRT")
    for library in options.custom_op_libraries:
        try:
            # Global, so that the plugin creators it registers are seen by TensorRT.
            ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise ModelLoadError(label, "TensorRT", f"plugin library: {exc}") from exc
    trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "")
