"""gRPC on two ports: TorchServe's inference and management services, and KServe v2.

* inference port (``grpc_inference_port``, 7070): ``org.pytorch.serve.grpc.inference.
  InferenceAPIsService`` and the Open Inference Protocol's ``inference.GRPCInferenceService``;
* management port (``grpc_management_port``, 7071): ``org.pytorch.serve.grpc.management.
  ManagementAPIsService``.

Both servers run on the frontend's event loop (``grpc.aio``), beside the HTTP planes, and call
the same data plane (``engine.dataplane``). The .proto files are in ``proto/``, with the
generated code committed next to them; regenerate it with ``python -m modelserve.grpc.generate``
(docs/protocols.md).
"""

import os

# Workers are started with fork + exec, which needs none of gRPC's fork handlers; with them
# on, gRPC logs a line on every worker start ("skipping fork() handlers"). Read when the
# grpc extension loads, so this precedes every import of grpc in the server.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
