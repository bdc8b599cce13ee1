"""Triton models as archives for the ``tensor`` handler: one per served version, packed (not
compressed) into a private store, each with a model-config YAML that carries what
config.pbtxt says about batching, instances and tensors.

| config.pbtxt | modelserve |
| --- | --- |
| ``max_batch_size`` with ``dynamic_batching`` / ``sequence_batching`` | ``batchSize`` (else 1) |
| ``sequence_batching`` | a stateful model (``tritonConfig``, read by ``engine.sequences``) |
| ``dynamic_batching.max_queue_delay_microseconds`` | ``maxBatchDelay`` in ms, rounded up |
| ``dynamic_batching.default_queue_policy.max_queue_size`` | ``jobQueueSize`` |
| ``instance_group`` counts (a group without one: 1) | workers (min = max) |
| ``instance_group`` KIND_CPU / KIND_GPU with ``gpus`` | ``deviceType`` / ``deviceIds`` |
| ``input`` / ``output`` | the v2 metadata (``[-1]`` + ``dims`` when ``max_batch_size`` > 0) |
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from modelserve_archiver.builder import build_archive
from modelserve_archiver.errors import ArchiverError
from modelserve_archiver.options import ArchiveOptions

from modelserve.repository.proto.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup
from modelserve.repository.triton import RepositoryError, TritonModel, TritonVersion

log = logging.getLogger("modelserve.repository")
HANDLER = "tensor"
# Triton's Python backend models (model.py) run under their own handler.
PYTHON_BACKEND = "python"
PYTHON_HANDLER = "triton_python"
# What a model config may say that modelserve does not act on yet: warned about, by name.
NOT_ACTED_ON = (
    ("dynamic_batching.preferred_batch_size", lambda c: c.dynamic_batching.preferred_batch_size),
    ("parameters", lambda c: c.parameters),
    ("input.reshape", lambda c: any(t.HasField("reshape") for t in c.input)),
    ("output.reshape", lambda c: any(t.HasField("reshape") for t in c.output)),
    ("output.label_filename", lambda c: any(t.label_filename for t in c.output)),
    (
        "sequence_batching.direct / oldest settings",
        lambda c: any(getattr(c.sequence_batching, s).ByteSize() for s in ("direct", "oldest")),
    ),
)


def pack_model(model: TritonModel, store: Path, tag: str) -> dict[str, Path]:
    """Archive every served version of ``model`` into ``store`` (file names carry ``tag``, so a
    reload never overwrites what serves); version → archive."""
    for what, present in NOT_ACTED_ON:
        if present(model.config):
            log.warning("model %s: %s in config.pbtxt is not acted on yet", model.name, what)
    document = model_yaml(model.config, model.backend)
    if model.auto_completed and model.backend != PYTHON_BACKEND:
        # The config API then answers from the tensors the worker reports, as auto-complete.
        del document["tritonConfig"]
    if model.version_labels:
        document["versionLabels"] = model.version_labels
    config_file = store / f".{model.name}-{tag}.yaml"
    config_file.write_text(yaml.safe_dump(document, sort_keys=False))  # proto field order
    try:
        return {
            version.version: _pack_version(model, version, config_file, store, tag)
            for version in model.versions
        }
    finally:
        config_file.unlink()


def instance_count(config: ModelConfig) -> int:
    """The workers of each version: the instance groups' counts (a group without one: 1)."""
    return sum(group.count or 1 for group in config.instance_group) or 1


def model_yaml(config: ModelConfig, backend: str) -> dict[str, Any]:
    """The archive's model-config YAML for ``config``."""
    scheduling = config.WhichOneof("scheduling_choice")
    # The sequence batcher batches too: one request of each of several sequences.
    batching = scheduling in ("dynamic_batching", "sequence_batching")
    document: dict[str, Any] = {
        "handler": {"backend": backend},
        "tritonConfig": config_json(config),
        "batchSize": max(config.max_batch_size, 1) if batching else 1,
        "maxBatchDelay": (
            math.ceil(config.dynamic_batching.max_queue_delay_microseconds / 1000)
            if scheduling == "dynamic_batching"
            else 0
        ),
    }
    queue = config.dynamic_batching.default_queue_policy.max_queue_size
    if queue > 0:
        document["jobQueueSize"] = queue
    groups = list(config.instance_group)
    if groups:
        document["minWorkers"] = document["maxWorkers"] = instance_count(config)
        document.update(_placement(config.name, groups))
    for key, tensors in metadata_tensors(config).items():
        if tensors:
            document[key] = tensors
    return document


def metadata_tensors(config: ModelConfig) -> dict[str, list[dict[str, Any]]]:
    """The config's ``inputs`` and ``outputs`` as v2 metadata tensors (``[-1]`` + ``dims``
    when ``max_batch_size`` > 0)."""
    batch_dim = [-1] if config.max_batch_size > 0 else []
    return {
        key: [
            {
                "name": tensor.name,
                "datatype": v2_datatype(tensor.data_type),
                "shape": batch_dim + list(tensor.dims),
            }
            for tensor in tensors
        ]
        for key, tensors in (("inputs", config.input), ("outputs", config.output))
    }


def config_json(message: Message) -> dict[str, Any]:
    """A config message as Triton's model config API renders it: proto field names, enums by
    name, 64-bit integers as JSON numbers (protobuf's own JSON writes them as strings), fields
    at their default left out."""
    return {field.name: _field_json(field, value) for field, value in message.ListFields()}


def _field_json(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {str(key): _scalar_json(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_scalar_json(field, item) for item in value]
    return _scalar_json(field, value)


def _scalar_json(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return config_json(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return value


def v2_datatype(data_type: int) -> str:
    """Triton's ``TYPE_FP32`` … as the v2 name (``FP32``; ``TYPE_STRING`` is ``BYTES``)."""
    name = DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def _placement(model: str, groups: list[ModelInstanceGroup]) -> dict[str, Any]:
    kinds = {group.kind for group in groups}
    if kinds == {ModelInstanceGroup.KIND_CPU}:
        return {"deviceType": "cpu"}
    if kinds == {ModelInstanceGroup.KIND_GPU}:
        gpus = sorted({gpu for group in groups for gpu in group.gpus})
        return {"deviceType": "gpu", **({"deviceIds": gpus} if gpus else {})}
    if kinds == {ModelInstanceGroup.KIND_AUTO}:
        return {}
    raise RepositoryError(
        f"model {model}: instance_group mixes kinds or uses KIND_MODEL, which is not served"
    )


def _pack_version(
    model: TritonModel, version: TritonVersion, config_file: Path, store: Path, tag: str
) -> Path:
    path = version.model_path
    handler = HANDLER
    inputs: dict[str, Any] = (
        {"extra_files": [str(path)]} if path.is_dir() else {"serialized_file": str(path)}
    )
    staging = None
    if model.backend == PYTHON_BACKEND:
        # The whole version directory, as <version>/ in the model directory (a link the
        # archiver follows): model.py may import its neighbours and open files beside it
        # through args["model_repository"], as under Triton.
        handler = PYTHON_HANDLER
        staging = tempfile.TemporaryDirectory(prefix=".python-", dir=store)
        (Path(staging.name) / version.version).symlink_to(path.parent.resolve())
        inputs = {"extra_files": [staging.name]}
    destination = store / f".{model.name}-{version.version}-{tag}"
    destination.mkdir()
    options = ArchiveOptions(
        model_name=model.name,
        version=version.version,
        handler=handler,
        export_path=destination,
        config_file=str(config_file),
        archive_format="zip-store",
        **inputs,
    )
    try:
        archive = build_archive(options)
    except ArchiverError as exc:
        raise RepositoryError(f"model {model.name} version {version.version}: {exc}") from exc
    finally:
        if staging is not None:
            staging.cleanup()
    moved = store / f"{model.name}-{version.version}-{tag}.mar"
    archive.rename(moved)
    destination.rmdir()
    return moved
