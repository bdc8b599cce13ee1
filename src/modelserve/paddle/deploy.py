"""``modelserve paddle web_service.py``: a pipeline service's ops and models packed into a
private store, the server settings that serve them, and the service the engine runs.

* An op (Paddle: ``concurrency`` processes) is the model ``<service>__<op>`` for the
  ``paddle_op`` handler, with ``concurrency`` workers taking one request at a time.
* Its ``model_config`` (Paddle: a local predictor in each op process) is the model
  ``<service>__<op>__model`` for the ``tensor`` handler, with the op's batching and device and
  ``ceil(concurrency / batch_size)`` workers, so that the op's workers share its batches.
* ``http_port`` / ``rpc_port`` are the inference and gRPC inference ports (flags win).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from modelserve_archiver.validation import MODEL_NAME_PATTERN

from modelserve.config import ConfigError, PortFlags, Settings, load_settings
from modelserve.engine.paddle_pipelines import PaddleService
from modelserve.paddle.config import OpConfig, ServiceConfig, load_config
from modelserve.paddle.dag import DescribedOp, ServiceDag, read_dag
from modelserve.protocol_contract import PADDLE_SETTINGS
from modelserve.quick_deploy import QuickDeployError, archive_inputs, client_url, pack, servable_in

OP_HANDLER = "paddle_op"
MODEL_SUFFIX = "__model"


@dataclass(frozen=True)
class PaddleDeployment:
    """A service ready to serve: the server settings, the archives to load at start, the
    service the engine runs over them, how to call it, and the notices about its config."""

    settings: Settings
    startup_models: list[str]
    service: PaddleService
    usage: str
    notices: list[str]


@contextlib.contextmanager
def prepare(
    service_file: Path,
    ports: PortFlags,
    config_file: Path | None = None,
    instance_name: str | None = None,
) -> Iterator[PaddleDeployment]:
    """Read the service, check its config and pack its ops and models into a private
    temporary store, removed when the context ends. ConfigError for what cannot be served."""
    if not service_file.is_file():
        raise ConfigError(f"no such service file: {service_file}")
    service_file = service_file.resolve()
    base = load_settings(config_file)
    dag = read_dag(service_file, base.default_startup_timeout)
    config = load_config(dag.config_file, dag.config)
    ops = {op.name: _op_config(op, config) for op in dag.ops}
    notices = config.notices + [
        f"op.{name} configures an op the DAG does not use; ignored"
        for name in config.ops
        if name not in ops
    ]
    models = _model_names(dag)
    with tempfile.TemporaryDirectory(prefix="modelserve-paddle-") as directory:
        store = Path(directory)
        archives = []
        for op in dag.ops:
            archives += _pack_op(dag, op, ops[op.name], models, service_file, store)
        flags = dataclasses.replace(
            ports,
            inference=ports.inference if ports.inference is not None else config.http_port,
            grpc_inference=(
                ports.grpc_inference if ports.grpc_inference is not None else config.rpc_port
            ),
        )
        settings = flags.apply(
            base.model_copy(
                update={
                    "model_store": store,
                    "enable_snapshots": False,  # the store is temporary
                    # It serves the service it was started with: a spare would only hold memory.
                    "spare_worker": False,
                    "instance_name": instance_name or base.instance_name,
                }
            )
        )
        service = PaddleService.of(
            dag.name,
            {op.name: (models[op.name][0], op.inputs) for op in dag.ops},
            dag.last,
            settings.default_response_timeout,
            config.retry,
            {
                op.name: models[op.name][1]
                for op in dag.ops
                if ops[op.name].model_config is not None
            },
        )
        yield PaddleDeployment(settings, archives, service, _usage(settings, dag), notices)


def _op_config(op: DescribedOp, config: ServiceConfig) -> OpConfig:
    """The op's config.yml section (Paddle's defaults without one), under what its
    constructor set."""
    return dataclasses.replace(config.ops.get(op.name, OpConfig()), **op.overrides)


def _model_names(dag: ServiceDag) -> dict[str, tuple[str, str]]:
    """Op → (its model's name, its model's model's name); ConfigError when a name cannot
    name a model or two ops would share one."""
    names: dict[str, tuple[str, str]] = {}
    taken: set[str] = set()
    for op in dag.ops:
        pair = (f"{dag.name}__{op.name}", f"{dag.name}__{op.name}{MODEL_SUFFIX}")
        for name in pair:
            if not MODEL_NAME_PATTERN.fullmatch(name) or name in taken:
                raise ConfigError(
                    f"service {dag.name}, op {op.name}: it serves as model {name}, which is "
                    "not a model name (letters, digits, '_', '-' and '.') or is another op's; "
                    "rename the service or the op"
                )
            taken.add(name)
        names[op.name] = pair
    return names


def _pack_op(
    dag: ServiceDag,
    op: DescribedOp,
    config: OpConfig,
    models: dict[str, tuple[str, str]],
    service_file: Path,
    store: Path,
) -> list[str]:
    """The archive of the op, and of its model when it has one, as startup entries."""
    op_model, model = models[op.name]
    where = f"op.{op.name}.local_service_conf.model_config"
    model_file = None
    if config.model_config is not None:
        directory = service_file.parent / config.model_config
        if not directory.is_dir():
            raise ConfigError(f"{where}: no such directory {directory}")
        try:
            model_file = servable_in(directory)
        except QuickDeployError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    workers = {"minWorkers": config.concurrency, "maxWorkers": config.concurrency}
    settings = {
        "service_file": str(service_file),
        "op": op.name,
        "last": op.name == dag.last,
        "model": model if model_file is not None else None,
        **{field.name: getattr(config, field.name) for field in dataclasses.fields(OpConfig)},
    }
    settings["gpus"] = list(config.gpus)
    entries = [
        _pack(
            op_model, {}, store, OP_HANDLER, {**workers, "batchSize": 1, PADDLE_SETTINGS: settings}
        )
    ]
    if model_file is not None:
        device: dict[str, Any] = (
            {"deviceType": "gpu", "deviceIds": list(config.gpus)} if config.gpus else {}
        )
        # Enough workers to take every op worker's call in full batches; fewer than the op's,
        # so that calls meet in the model's queue and leave together.
        model_workers = -(-config.concurrency // config.batch_size)
        batching = {
            "minWorkers": model_workers,
            "maxWorkers": model_workers,
            "batchSize": config.batch_size,
            "maxBatchDelay": max(config.auto_batching_timeout, 0),
        }
        try:
            inputs = archive_inputs(model_file)
        except QuickDeployError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        entries.append(_pack(model, inputs, store, "tensor", {**batching, **device}))
    return entries


def _pack(
    name: str, inputs: dict[str, Any], store: Path, handler: str, model_config: dict[str, Any]
) -> str:
    """Pack one model with its model-config YAML; its startup entry."""
    config_file = store / f".{name}.yaml"
    config_file.write_text(yaml.safe_dump(model_config, sort_keys=False))
    try:
        archive = pack(name, inputs, store, handler, config_file=str(config_file))
    except QuickDeployError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        config_file.unlink()
    return f"{name}={archive.name}"


def _usage(settings: Settings, dag: ServiceDag) -> str:
    """A curl command line that calls the service, in Paddle's request format."""
    return (
        f"curl -X POST {client_url(settings)}/{dag.name}/prediction "
        '-d \'{"key": ["..."], "value": ["..."]}\''
    )
