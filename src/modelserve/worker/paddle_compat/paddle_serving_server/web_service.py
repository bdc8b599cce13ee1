"""Paddle Serving's ``paddle_serving_server.web_service``: ``WebService`` and ``Op``.

A service file builds its DAG in ``get_pipeline_response(read_op)`` and ends with
``prepare_pipeline_config("config.yml")`` and ``run_service()``. modelserve runs the file
(``load_service``) in a process of its own to read the DAG (``describe``), and in each op's
workers to get the op objects (``service_ops``); there ``run_service()`` returns control to
modelserve instead of starting Paddle's servers.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from .pipeline.operator import DAG_EXECUTOR, Op, RequestOp, ResponseOp

__all__ = ["Op", "WebService"]

# The services whose prepare_pipeline_config ran while a file was loaded, newest last.
_prepared: list[WebService] = []


class ServiceStarted(BaseException):
    """``run_service()`` under modelserve: ends the service file's run with its service. A
    BaseException, so that the file's own ``except Exception`` does not swallow it."""

    def __init__(self, service: WebService) -> None:
        super().__init__(
            f"service {service.name}: run this file with 'modelserve paddle FILE' (modelserve's "
            "paddle_serving_server does not start Paddle Serving's own servers)"
        )
        self.service = service


class WebService:
    """A pipeline service: subclass it and return the DAG's last op from
    ``get_pipeline_response``."""

    def __init__(self, name: str = "default_service") -> None:
        self.name = name
        self._yml_file: str | None = None
        self._yml_dict: dict[str, Any] | None = None
        self._response_op: ResponseOp | None = None

    def get_pipeline_response(self, read_op: RequestOp) -> Op | None:
        """Build the DAG from ``read_op`` (the request) and return its last op."""
        return None

    def prepare_pipeline_config(
        self, yml_file: str | None = None, yml_dict: dict[str, Any] | None = None
    ) -> None:
        """Build the DAG and note the configuration (a YAML file, or the same as a dict)."""
        if (yml_file is None) == (yml_dict is None):
            raise ValueError("prepare_pipeline_config: give one of yml_file or yml_dict")
        last_op = self.get_pipeline_response(RequestOp())
        if not isinstance(last_op, Op):
            raise ValueError(
                "The return value type of `get_pipeline_response` function is not Op type, "
                "please check function `get_pipeline_response`."
            )
        self._response_op = ResponseOp(input_ops=[last_op])
        self._yml_file = None if yml_file is None else os.path.abspath(yml_file)
        self._yml_dict = yml_dict
        _prepared.append(self)

    def run_service(self) -> None:
        """Under modelserve: hand the prepared service over (see ``ServiceStarted``)."""
        raise ServiceStarted(self)


def load_service(path: str) -> WebService:
    """Run the service file at ``path`` as ``python path`` would (in its directory, as
    ``__main__``) up to its ``run_service()``; the service it prepared."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.chdir(directory)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    _prepared.clear()
    try:
        runpy.run_path(path, run_name="__main__")
    except ServiceStarted as started:
        return started.service
    if not _prepared:
        raise ValueError(
            f"{os.path.basename(path)} prepares no WebService: it must call "
            "prepare_pipeline_config on one"
        )
    return _prepared[-1]


def service_ops(service: WebService) -> dict[str, Op]:
    """The ops the DAG runs (those the last op reads from, back to the request), by name,
    each after the ops it reads from. ValueError for two ops of one name, an op that reads
    its own output, or an op that reads nothing (every op reads the request or other ops)."""
    if service._response_op is None:
        raise ValueError(f"service {service.name}: prepare_pipeline_config was not called")
    ordered: dict[str, Op] = {}
    seen: dict[str, Op] = {}
    visiting: set[str] = set()

    def visit(op: Op) -> None:
        if isinstance(op, RequestOp):
            return
        if seen.setdefault(op.name, op) is not op:
            raise ValueError(f"service {service.name}: two ops are named {op.name!r}")
        if op.name in ordered:
            return
        if op.name in visiting:
            raise ValueError(f"service {service.name}: op {op.name} reads its own output")
        if not op.get_input_ops():
            raise ValueError(
                f"service {service.name}: op {op.name} has no input_ops; build it on the "
                "read_op get_pipeline_response receives, or on other ops"
            )
        visiting.add(op.name)
        for before in op.get_input_ops():
            visit(before)
        visiting.discard(op.name)
        ordered[op.name] = op

    for op in service._response_op.get_input_ops():
        visit(op)
    return ordered


def describe(service: WebService) -> dict[str, Any]:
    """The service as modelserve's frontend reads it: its name, configuration, ops (with
    what each op's constructor set) and last op."""
    ops = service_ops(service)
    assert service._response_op is not None  # service_ops checked
    return {
        "name": service.name,
        "config_file": service._yml_file,
        "config": service._yml_dict,
        "last": service._response_op.get_input_ops()[0].name,
        "ops": [
            {
                "name": op.name,
                "class": type(op).__qualname__,
                "inputs": [
                    DAG_EXECUTOR if isinstance(before, RequestOp) else before.name
                    for before in op.get_input_ops()
                ],
                "concurrency": op.concurrency,
                "fetch_list": op._fetch_names,
                "timeout": op._timeout,
                "retry": op._retry_given or None,
                "batch_size": op._batch_size,
                "auto_batching_timeout": op._auto_batching_timeout,
                "client_type": op.client_type,
            }
            for op in ops.values()
        ],
    }
