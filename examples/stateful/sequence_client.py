"""Two sequences of the accumulate model, their requests interleaved, over HTTP or gRPC.

    .venv/bin/python examples/stateful/sequence_client.py [--url 127.0.0.1:8000] [--grpc]

Each sequence sends 1, 2, 3, 4 (sequence_start on the first request, sequence_end on the
last); the answers must be their running sums, 1, 3, 6, 10, whichever instance serves them.
Prints each answer and PASS, and exits 0; or exits 1.
"""

import argparse
import itertools
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

MODEL_NAME = "accumulate"
VALUES = [1, 2, 3, 4]
SEQUENCES = [1001, 1002]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:8000", help="host:port of the server")
    parser.add_argument("--grpc", action="store_true", help="use gRPC (default: HTTP)")
    args = parser.parse_args()
    client_module = grpcclient if args.grpc else httpclient
    sums = {sequence: [] for sequence in SEQUENCES}
    with client_module.InferenceServerClient(args.url) as client:
        for step, value in enumerate(VALUES):
            for sequence in SEQUENCES:
                data = client_module.InferInput("INPUT", [1, 1], "INT32")
                data.set_data_from_numpy(np.array([[value]], dtype=np.int32))
                result = client.infer(
                    MODEL_NAME,
                    [data],
                    sequence_id=sequence,
                    sequence_start=step == 0,
                    sequence_end=step == len(VALUES) - 1,
                )
                sums[sequence].append(int(result.as_numpy("SUM")[0, 0]))
    expected = list(itertools.accumulate(VALUES))
    for sequence, got in sums.items():
        print(f"sequence {sequence}: {got}")
        if got != expected:
            print(f"accumulate example error: expected {expected}")
            return 1
    print("PASS: accumulate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
