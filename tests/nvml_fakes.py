"""A stand-in for pynvml, for the GPU code paths on machines without a GPU, and whether the
real NVML works here."""

from __future__ import annotations

import types

# A device field value: NVML refuses to tell it (as for utilisation on MIG slices).
UNSUPPORTED = object()


def fake_nvml(
    devices: list[dict[str, object]], init_error: Exception | None = None
) -> types.ModuleType:
    """A stand-in for pynvml: each device is {"used", "total"} bytes and a "gpu" percent,
    or UNSUPPORTED where NVML refuses to tell utilisation (as on MIG slices)."""
    module = types.ModuleType("pynvml")
    module.init_calls = 0

    class NVMLError(Exception):
        pass

    def nvml_init() -> None:
        module.init_calls += 1
        if init_error is not None:
            raise init_error

    def utilization(handle: int) -> types.SimpleNamespace:
        gpu = devices[handle]["gpu"]
        if gpu is UNSUPPORTED:
            raise NVMLError("Not Supported")
        return types.SimpleNamespace(gpu=gpu)

    module.NVMLError = NVMLError
    module.nvmlInit = nvml_init
    module.nvmlDeviceGetCount = lambda: len(devices)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(
        used=devices[handle]["used"], total=devices[handle]["total"]
    )
    module.nvmlDeviceGetUtilizationRates = utilization
    return module


def nvml_init_error() -> str | None:
    """Why the real NVML cannot start here, or None when it can."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
