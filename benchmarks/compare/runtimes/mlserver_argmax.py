"""MLServer custom runtime for the benchmark's TorchScript classifiers (runs in MLServer's venv).

MLServer imports this module by the ``implementation`` named in ``model-settings.json``, from
the model folder it was copied into. It does what ``handlers/tensor_argmax.py`` does for
TorchServe and modelserve: one forward pass over the batch, then each sample's class index.
Adaptive batching (``max_batch_size`` in the settings) concatenates requests along the first
axis before :meth:`TensorArgmaxRuntime.predict` and splits its outputs after, so ``predict``
always sees ``N`` samples and answers ``N`` classes.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

# The benchmark tells worker processes from the frontend by the pid files they leave here.
PID_DIR_VARIABLE = "BENCH_WORKER_PID_DIR"


class TensorArgmaxRuntime(MLModel):
    """A TorchScript classifier; input ``input__0`` FP32 ``[N, ...sample shape]``, output
    ``class`` INT64 ``[N, 1]``."""

    async def load(self) -> bool:
        """Load the TorchScript file named by ``parameters.uri``."""
        pid_dir = os.environ.get(PID_DIR_VARIABLE)
        if pid_dir:
            (Path(pid_dir) / str(os.getpid())).touch()
        with warnings.catch_warnings():
            # Recent torch flags TorchScript as deprecated; the notice would only add noise.
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = torch.jit.load(await get_model_uri(self.settings), map_location="cpu")
        self._model = model.eval()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Classify every sample of the (possibly batched) request in one forward pass."""
        samples = torch.from_numpy(NumpyCodec.decode_input(payload.inputs[0]))
        with torch.inference_mode():
            classes = self._model(samples.float()).argmax(dim=1)
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("class", classes.numpy())]
        )
