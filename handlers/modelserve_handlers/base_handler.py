"""TorchServe 0.12's ``BaseHandler``: load the archive's model, then run each batch through
``preprocess`` → ``inference`` → ``postprocess``.

Subclasses override the three stages; ``handle`` is the entry point the worker calls. The model
itself is loaded by ``modelserve_handlers.backends``, which knows every supported format.

An ``inference`` that returns a generator answers in parts (tokens, partial transcripts): each
item it yields goes through ``postprocess`` and then to the clients at once, one part per
request of the batch (docs/streaming.md).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import torch

from modelserve_handlers.backends import TORCH_BACKENDS, load_model
from modelserve_handlers.errors import PredictionException
from modelserve_handlers.labels import LABEL_MAPPING_FILE, load_label_mapping
from modelserve_handlers.payload import row_payload
from modelserve_handlers.timing import timed

log = logging.getLogger(__name__)


def select_device(gpu_id: int | None) -> torch.device:
    """``cuda:<gpu_id>`` when the worker was given a GPU and CUDA works, else the CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class BaseHandler:
    """Loads the model named in the manifest; tensor in, ``tolist()`` out."""

    def __init__(self) -> None:
        self.model: Any = None
        self.backend: str | None = None
        self.mapping: dict[str, str] | None = None
        self.device: torch.device | None = None
        self.map_location: str | None = None
        self.initialized = False
        self.context: Any = None
        self.manifest: dict[str, Any] | None = None
        self.model_dir: str | None = None
        self.model_pt_path: str | None = None
        self.model_yaml_config: dict[str, Any] = {}
        self.explain = False

    def initialize(self, context: Any) -> None:
        """Pick the device, load the model and the optional ``index_to_name.json``."""
        properties = context.system_properties
        self.model_yaml_config = context.model_yaml_config or {}
        self.device = select_device(properties.get("gpu_id"))
        self.map_location = self.device.type
        self.manifest = context.manifest
        self.model_dir = properties["model_dir"]
        serialized_file = self.manifest["model"].get("serializedFile")
        if serialized_file:
            self.model_pt_path = os.path.join(self.model_dir, serialized_file)
        loaded = load_model(Path(self.model_dir), self.manifest, str(self.device))
        self.backend = loaded.backend
        # TorchServe handlers call ``self.model(x)`` and ``self.model.eval()`` on torch models,
        # so those get the module itself; other frameworks keep the backend's callable wrapper.
        self.model = loaded.module if loaded.backend in TORCH_BACKENDS else loaded
        log.debug("loaded %s model %s", loaded.backend, self.model_pt_path)
        self.mapping = load_label_mapping(os.path.join(self.model_dir, LABEL_MAPPING_FILE))
        self.initialized = True

    @timed
    def preprocess(self, data: Any) -> Any:
        """The batch as a tensor on the model's device (override to read real requests)."""
        return torch.as_tensor(data, device=self.device)

    @timed
    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the model on the preprocessed batch, without autograd.

        A torch model gets the batch on its device. Other frameworks get it as a numpy array,
        and their outputs come back as tensors (one output: a tensor; several: a dict
        name → tensor), so one ``postprocess`` serves every backend.
        """
        if self.backend is not None and self.backend not in TORCH_BACKENDS:
            return self._run_framework_model(data, *args, **kwargs)
        with torch.inference_mode():
            if isinstance(data, torch.Tensor):
                data = data.to(self.device)
            return self.model(data, *args, **kwargs)

    def _run_framework_model(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        outputs = {
            name: torch.as_tensor(value)
            for name, value in self.model(data, *args, **kwargs).items()
        }
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    @timed
    def postprocess(self, data: Any) -> list[Any]:
        """One JSON-ready result per request."""
        return data.tolist()

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any] | Iterator[list[Any]]:
        """Answer a batch: describe, explain or predict; a generator of parts when
        ``inference`` returns one.

        ``HandlerTime`` is measured by the worker around every handler call, so it is not
        recorded here a second time.
        """
        self.context = context
        if self._is_describe():
            return [self.describe_handle()]
        data_preprocess = self.preprocess(data)
        if self._is_explain():
            return self.explain_handle(data_preprocess, data)
        inferred = self.inference(data_preprocess)
        # A generator only: other iterators (zip, map) are answers a postprocess may expect.
        if inspect.isgenerator(inferred):
            return self._postprocess_parts(inferred)
        return self.postprocess(inferred)

    def _postprocess_parts(self, steps: Generator[Any, None, None]) -> Iterator[list[Any]]:
        """Each step of a generating ``inference``, postprocessed; closing this (the client
        went away) closes ``inference``'s generator too, where it stands."""
        try:
            for step in steps:
                yield self.postprocess(step)
        finally:
            steps.close()

    def explain_handle(self, data_preprocess: Any, raw_data: list[dict[str, Any]]) -> Any:
        """Explanations for ``/explanations``: ``get_insights`` with the first request's target."""
        inputs, target = None, 0
        row = raw_data[0]
        if isinstance(row, dict):
            inputs = row_payload(row)
            target = row.get("target") or 0
        return self.get_insights(data_preprocess, inputs, target)

    def get_insights(self, tensor_data: Any, raw_input: Any, target: Any = 0) -> Any:
        """Attributions for an explanation; handlers that explain override this.

        TorchServe's built-ins compute these with Captum, which modelserve does not ship.
        """
        raise PredictionException(
            f"{type(self).__name__} does not explain its predictions (it has no get_insights)",
            501,
        )

    def describe_handle(self) -> Any:
        """The handler's own description of the model (None unless overridden)."""
        return None

    def get_device(self) -> torch.device | None:
        """The device the model runs on."""
        return self.device

    def _request_flag(self, header: str) -> bool:
        # The frontend sends these as the strings "True"/"False" on every request.
        return self.context is not None and self.context.get_request_header(0, header) == "True"

    def _is_explain(self) -> bool:
        # Unlike TorchServe, which never resets it, ``self.explain`` follows the batch in hand.
        self.explain = self._request_flag("explain")
        return self.explain

    def _is_describe(self) -> bool:
        return self._request_flag("describe")
