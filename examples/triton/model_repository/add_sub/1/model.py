"""Triton's add_sub Python model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.

Written for modelserve's examples from the python_backend documentation; it runs unchanged
under Triton and under ``modelserve start --model-repository``.
"""

import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sum and difference of two FP32 tensors, one response per request."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.output_dtypes = {
            name: pb_utils.triton_string_to_numpy(
                pb_utils.get_output_config_by_name(config, name)["data_type"]
            )
            for name in ("OUTPUT0", "OUTPUT1")
        }
        self.logger = pb_utils.Logger
        self.logger.log_info(f"{args['model_name']} ready on {args['model_instance_kind']}")

    def execute(self, requests):
        responses = []
        for request in requests:
            in0 = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            in1 = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            out0 = pb_utils.Tensor("OUTPUT0", (in0 + in1).astype(self.output_dtypes["OUTPUT0"]))
            out1 = pb_utils.Tensor("OUTPUT1", (in0 - in1).astype(self.output_dtypes["OUTPUT1"]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out0, out1]))
        return responses

    def finalize(self):
        self.logger.log_info("add_sub unloaded")
