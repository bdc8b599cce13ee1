"""grps's API (NetEase-Media/grps), shared by its two adapters: ``api.grps`` (HTTP, on the
inference plane) and ``grpc.grps`` (``grps.protos.v1.GrpsService``, on the gRPC inference port).

* ``proto/``: the wire-compatible ``grps.proto`` and its generated code;
* ``tensors``: grps's GenericTensor (as JSON or protobuf) ↔ the protocol-neutral tensors the
  handler receives, and ``ndarray`` JSON;
* ``service``: what each grps method does over the data plane: the model a request names,
  predict, the online/offline switch, the metadata.
"""
