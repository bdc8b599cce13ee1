"""The running sum of INPUT over a sequence: the START control input begins a sequence, the
sequence_end flag of its last request frees its sum, and correlation_id() tells the
sequences of a batch apart."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sums = {}

    def execute(self, requests):
        responses = []
        for request in requests:
            sequence = request.correlation_id()
            if pb_utils.get_input_tensor_by_name(request, "START").as_numpy()[0, 0]:
                self.sums[sequence] = 0
            value = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()[0, 0]
            total = self.sums.get(sequence, 0) + int(value)
            self.sums[sequence] = total
            if request.flags() & pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END:
                del self.sums[sequence]
            output = pb_utils.Tensor("SUM", np.array([[total]], dtype=np.int32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
