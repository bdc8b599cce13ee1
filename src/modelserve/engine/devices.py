"""Which device each worker runs on: the CPU, or one GPU by index (``cuda:<gpu_id>``).

The frontend never imports a framework: it counts GPUs with NVML (``nvidia-ml-py``) when that
is installed and a driver answers, narrowed by ``CUDA_VISIBLE_DEVICES`` as CUDA itself would
narrow it. The handler turns the ``gpu_id`` it is given into its framework's device.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("modelserve.engine")

DEVICE_TYPES = ("cpu", "gpu")


class DevicePlacementError(ValueError):
    """The requested placement cannot be honoured; the message says why."""


@dataclass(frozen=True, slots=True)
class Placement:
    """The GPUs a model version's workers share; none means every worker runs on the CPU."""

    gpu_ids: tuple[int, ...] = ()

    @property
    def device_type(self) -> str:
        """``gpu`` or ``cpu``, as TorchServe's describe reports it."""
        return "gpu" if self.gpu_ids else "cpu"

    def next_gpu(self, live_gpu_ids: Iterable[int | None]) -> int | None:
        """The GPU for a new worker, given the GPUs of the workers alive now.

        The least busy of ``gpu_ids`` wins, ties going to the earlier one: workers started one
        after another go round-robin, and a replacement for a crashed worker takes the GPU
        its predecessor left, instead of piling onto the next one in turn.
        """
        if not self.gpu_ids:
            return None
        busy = Counter(live_gpu_ids)
        return min(self.gpu_ids, key=lambda gpu_id: busy[gpu_id])


def resolve_placement(
    gpu_count: int,
    device: str | None = None,
    device_type: str | None = None,
    device_ids: tuple[int, ...] | None = None,
    model: str = "the model",
) -> Placement:
    """Where a model version's workers go, given ``gpu_count`` visible GPUs.

    ``device`` is the server-wide setting (``cpu``, ``cuda`` or ``cuda:N``) and forces its
    choice on every model; without it the model config's ``deviceType`` decides, and without
    that the workers spread over every visible GPU, or use the CPU when there is none
    (TorchServe's rule). ``deviceIds`` narrows the GPUs a GPU placement spreads over.
    Raises DevicePlacementError for a GPU that is not there; ``model`` names the model in
    the warning about a GPU model served on the CPU.
    """
    if device == "cpu" or (device is None and device_type == "cpu"):
        return Placement()
    if device is None and gpu_count == 0:
        if device_type == "gpu" or device_ids:
            # As TorchServe: a GPU model on a machine without one still serves, on the CPU.
            log.warning("%s asks for a GPU, but none is visible: serving it on the CPU", model)
        return Placement()
    if gpu_count == 0:
        raise DevicePlacementError(
            f"{device} asked for, but no GPU is visible (install nvidia-ml-py, or set "
            "number_of_gpu)"
        )
    if device is not None and device != "cuda":
        device_ids = (int(device.removeprefix("cuda:")),)
    gpu_ids = tuple(dict.fromkeys(device_ids or range(gpu_count)))
    missing = [gpu_id for gpu_id in gpu_ids if gpu_id >= gpu_count]
    if missing:
        raise DevicePlacementError(f"GPU {missing[0]} asked for, but only {_gpu_range(gpu_count)}")
    return Placement(gpu_ids)


def _gpu_range(gpu_count: int) -> str:
    if gpu_count == 1:
        return "GPU 0 is visible"
    return f"GPUs 0-{gpu_count - 1} are visible"


def count_visible_gpus(cuda_visible_devices: str | None, physical_gpus: int | None) -> int:
    """How many GPUs a worker can address as ``cuda:0 …``.

    ``physical_gpus`` is NVML's count (None when NVML cannot tell). ``CUDA_VISIBLE_DEVICES``,
    when set, lists the GPUs CUDA shows, in order, up to its first invalid entry (``-1``
    hides everything after it, as in CUDA); NVML ignores that variable, so it narrows NVML's
    count rather than replacing it.
    """
    if cuda_visible_devices is None:
        return physical_gpus or 0
    listed = 0
    for entry in cuda_visible_devices.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        listed += 1
    return listed if physical_gpus is None else min(listed, physical_gpus)


def probe_physical_gpus() -> int | None:
    """NVML's GPU count; None when nvidia-ml-py is missing or no driver answers."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    # A missing or mismatched driver surfaces as NVMLError, OSError or worse; whatever it is,
    # the server must still start, on the CPU.
    except Exception as exc:
        log.debug("no GPU count from NVML: %s", exc)
        return None
    try:
        return pynvml.nvmlDeviceGetCount()
    except Exception as exc:
        log.debug("no GPU count from NVML: %s", exc)
        return None
    finally:
        pynvml.nvmlShutdown()


def visible_gpu_count(number_of_gpu: int | None, cuda_visible_devices: str | None) -> int:
    """The GPUs workers are spread over: ``number_of_gpu`` when set, else what is visible.

    An explicit ``number_of_gpu`` is trusted (TorchServe caps it at the visible count), so a
    setting the probe cannot see through, such as a container without NVML, still works.
    """
    detected = count_visible_gpus(cuda_visible_devices, probe_physical_gpus())
    if number_of_gpu is None:
        return detected
    if number_of_gpu > detected:
        log.warning("number_of_gpu=%d, but %d GPUs are visible", number_of_gpu, detected)
    return number_of_gpu
