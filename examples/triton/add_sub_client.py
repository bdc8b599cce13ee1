"""Triton's add_sub client, as Triton's python_backend example writes it, over HTTP or gRPC.

    .venv/bin/python examples/triton/add_sub_client.py [--url 127.0.0.1:8080] [--grpc]

Sends two random FP32 vectors (one batch row of four), checks OUTPUT0 = sum and OUTPUT1 =
difference, prints PASS and exits 0, or exits 1.
"""

import argparse
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype

MODEL_NAME = "add_sub"
SHAPE = [1, 4]  # config.pbtxt batches (max_batch_size 8): one row of four


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:8080", help="host:port of the server")
    parser.add_argument("--grpc", action="store_true", help="use gRPC (default: HTTP)")
    args = parser.parse_args()
    client_module = grpcclient if args.grpc else httpclient
    with client_module.InferenceServerClient(args.url) as client:
        input0_data = np.random.rand(*SHAPE).astype(np.float32)
        input1_data = np.random.rand(*SHAPE).astype(np.float32)
        inputs = [
            client_module.InferInput(
                "INPUT0", input0_data.shape, np_to_triton_dtype(input0_data.dtype)
            ),
            client_module.InferInput(
                "INPUT1", input1_data.shape, np_to_triton_dtype(input1_data.dtype)
            ),
        ]
        inputs[0].set_data_from_numpy(input0_data)
        inputs[1].set_data_from_numpy(input1_data)
        outputs = [
            client_module.InferRequestedOutput("OUTPUT0"),
            client_module.InferRequestedOutput("OUTPUT1"),
        ]
        response = client.infer(MODEL_NAME, inputs, request_id="1", outputs=outputs)
        output0_data = response.as_numpy("OUTPUT0")
        output1_data = response.as_numpy("OUTPUT1")
    print(f"INPUT0 ({input0_data}) + INPUT1 ({input1_data}) = OUTPUT0 ({output0_data})")
    print(f"INPUT0 ({input0_data}) - INPUT1 ({input1_data}) = OUTPUT1 ({output1_data})")
    if not np.allclose(input0_data + input1_data, output0_data):
        print("add_sub example error: incorrect sum")
        return 1
    if not np.allclose(input0_data - input1_data, output1_data):
        print("add_sub example error: incorrect difference")
        return 1
    print("PASS: add_sub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
