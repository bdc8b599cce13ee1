"""Classify scikit-learn's bundled digit images through the ``digits_pipeline`` BLS model.

    .venv/bin/python examples/triton/digits_client.py [--url 127.0.0.1:8080] [--grpc] [--count 10]

Each image (8x8, intensities 0-16, UINT8) is one request; prints each predicted digit beside
the true one, and the accuracy. Exits 1 if any request fails.
"""

import argparse
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_digits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:8080", help="host:port of the server")
    parser.add_argument("--grpc", action="store_true", help="use gRPC (default: HTTP)")
    parser.add_argument("--count", type=int, default=10, help="how many images to send")
    args = parser.parse_args()
    client_module = grpcclient if args.grpc else httpclient
    digits = load_digits()
    correct = 0
    with client_module.InferenceServerClient(args.url) as client:
        for image, truth in zip(digits.images[: args.count], digits.target, strict=False):
            batch = image.astype(np.uint8).reshape(1, 8, 8)
            tensor = client_module.InferInput("IMAGE", list(batch.shape), "UINT8")
            tensor.set_data_from_numpy(batch)
            result = client.infer("digits_pipeline", [tensor])
            label = int(result.as_numpy("LABEL")[0][0])
            correct += label == truth
            print(f"digit {truth}: predicted {label}")
    print(f"accuracy {correct}/{args.count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
