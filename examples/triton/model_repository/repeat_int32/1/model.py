"""A decoupled Triton Python model: repeats each element of IN as its own response.

Each request gets ``len(IN)`` responses (OUT: the element, IDX: its index), the i-th after
``DELAY[i]`` milliseconds, then a flag-only send with ``TRITONSERVER_RESPONSE_COMPLETE_FINAL``;
an empty IN gets the FINAL flag alone. The responses are sent from a thread started per request,
so they keep coming after ``execute`` (which waits ``WAIT`` milliseconds) has returned ``None``.
A request whose client went away (``is_cancelled()``) gets no more responses.
"""

import json
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException(
                "repeat_int32 must be decoupled: model_transaction_policy { decoupled: true }"
            )
        self.lock = threading.Lock()
        self.running = []

    def execute(self, requests):
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            delays = pb_utils.get_input_tensor_by_name(request, "DELAY").as_numpy()
            if values.shape != delays.shape:
                request.get_response_sender().send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError("IN and DELAY must have the same shape")
                    ),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
                continue
            thread = threading.Thread(
                target=self.repeat, args=(request.get_response_sender(), values, delays)
            )
            with self.lock:
                self.running.append(thread)
            thread.start()
        wait_ms = pb_utils.get_input_tensor_by_name(requests[0], "WAIT").as_numpy()[0]
        time.sleep(wait_ms / 1000)
        return None

    def repeat(self, sender, values, delays):
        try:
            for index, (value, delay_ms) in enumerate(zip(values, delays, strict=True)):
                if sender.is_cancelled():
                    break
                time.sleep(delay_ms / 1000)
                out = pb_utils.Tensor("OUT", np.array([value], dtype=np.int32))
                idx = pb_utils.Tensor("IDX", np.array([index], dtype=np.uint32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out, idx]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        finally:
            with self.lock:
                self.running.remove(threading.current_thread())

    def finalize(self):
        with self.lock:
            running = list(self.running)
        for thread in running:
            thread.join()
