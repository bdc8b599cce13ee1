"""A BLS pipeline in one Python model: scale the image, ask ``digits_classifier`` (an ONNX
model of the same server) for the class probabilities, answer the most likely digit.

``execute`` is a coroutine: every request of the batch sends its BLS request at once
(``async_exec``), so the classifier receives them together and batches them. A classifier
failure fails the request it belongs to, with the classifier's message.
"""

import asyncio

import numpy as np
import triton_python_backend_utils as pb_utils

CLASSIFIER = "digits_classifier"
MAX_INTENSITY = 16.0  # scikit-learn's digits: 0 (white) to 16 (black)


class TritonPythonModel:
    """Pre-process, classify through BLS, post-process."""

    async def execute(self, requests):
        calls = [self._classify(request) for request in requests]
        return list(await asyncio.gather(*calls))

    async def _classify(self, request):
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        pixels = image.reshape(image.shape[0], 64).astype(np.float32) / MAX_INTENSITY
        inner = pb_utils.InferenceRequest(
            model_name=CLASSIFIER,
            inputs=[pb_utils.Tensor("pixels", pixels)],
            requested_output_names=["probabilities"],
        )
        answer = await inner.async_exec()
        if answer.has_error():
            message = f"{CLASSIFIER} failed: {answer.error().message()}"
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        probabilities = pb_utils.get_output_tensor_by_name(answer, "probabilities").as_numpy()
        labels = probabilities.argmax(axis=1).astype(np.int64).reshape(-1, 1)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("LABEL", labels),
                pb_utils.Tensor("PROBABILITIES", probabilities.astype(np.float32)),
            ]
        )
