"""TorchServe workflow specs: the YAML of a .war (``models:`` and ``dag:``) as nodes of the
pipeline engine, with TorchServe 0.12's defaults and names.

``models:`` holds the global knobs (``min-workers`` … ``timeout-ms``) and one entry per model
node (``url``: a .mar in the model store, and overrides of the knobs). ``dag:`` maps a node to
its successors. A node not under ``models:`` is a function ``fn(data, context)`` of the
workflow's handler file. Every node serves as the model ``<workflow>__<node>``, as in
TorchServe.

For the engine's graph checks a node is a pipeline step that reads its predecessors' outputs
and produces one value under its own name; the start node reads the request itself.
"""

from __future__ import annotations

import ast
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml

from modelserve.engine.errors import BadRequestException
from modelserve.engine.pipelines import Pipeline, PipelineStep, check_graph

PLATFORM = "workflow"
# TorchServe's WorkFlow defaults for the global knobs.
DEFAULTS = {
    "min-workers": 1,
    "max-workers": 1,
    "batch-size": 1,
    "max-batch-delay": 50,
    "retry-attempts": 1,
    "timeout-ms": 10000,
}
# TorchServe runs a function node on one worker, unbatched, whatever the globals say.
FUNCTION_POOL = {"min-workers": 1, "max-workers": 1, "batch-size": 1, "max-batch-delay": 0}
# A step output's name: a node's answer is one request body.
BODY = "body"


class InvalidWorkflowError(BadRequestException):
    """The spec, the manifest or the graph is not a valid workflow (400, naming why)."""


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice (YAML forbids it;
    PyYAML would keep the last silently): a node defined twice in ``dag:`` would otherwise
    lose its first successors without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<:" merges another mapping; its keys may be overridden here
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the safe loader refuses it below, saying so
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True, slots=True)
class WorkflowNode:
    """One node: the model it serves as, the .mar it comes from (None: a function of the
    handler file) and its knobs (TorchServe's names)."""

    name: str
    model: str
    url: str | None
    knobs: dict[str, int]

    @property
    def is_function(self) -> bool:
        """Whether the node runs a function of the workflow's handler file."""
        return self.url is None


@dataclass(frozen=True, slots=True)
class Workflow:
    """A registered workflow: its nodes (in spec order), edges and global knobs."""

    name: str
    url: str
    handler: str
    nodes: dict[str, WorkflowNode]
    successors: dict[str, list[str]]
    knobs: dict[str, int]

    def predecessors(self, node: str) -> list[str]:
        """The nodes whose output ``node`` receives, in spec order."""
        return [name for name, nexts in self.successors.items() if node in nexts]

    def leaves(self) -> list[str]:
        """The nodes whose outputs are the workflow's answer."""
        return [name for name in self.nodes if not self.successors[name]]

    def start(self) -> str:
        """The one node that receives the request."""
        return next(name for name in self.nodes if not self.predecessors(name))

    def dag_text(self) -> str:
        """``dag:`` as TorchServe's describe shows it (a Java map's text)."""
        edges = ", ".join(f"{name}=[{', '.join(nexts)}]" for name, nexts in self.successors.items())
        return "{" + edges + "}"

    def pipeline(self, timeout_s: float) -> Pipeline:
        """The workflow as engine steps: each node reads its predecessors' outputs."""
        steps = [
            PipelineStep(
                name=node.name,
                model=node.model,
                version=None,
                inputs={before: before for before in self.predecessors(node.name)},
                outputs={BODY: node.name},
            )
            for node in self.nodes.values()
        ]
        leaves = [{"name": leaf, "datatype": "BYTES", "shape": [-1]} for leaf in self.leaves()]
        return Pipeline(self.name, "1.0", PLATFORM, [], leaves, steps, timeout_s)


def parse_workflow(
    name: str, url: str, handler: str, spec: bytes, handler_source: bytes
) -> Workflow:
    """The workflow a spec describes, checked: 400 naming a key given twice, a malformed knob,
    a model without a url, a node that is neither a model nor a handler function, not one
    start node, a cycle."""
    try:
        document = yaml.load(spec, Loader=_SpecLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as exc:
        raise InvalidWorkflowError(f"workflow {name}: the spec is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidWorkflowError(f"workflow {name}: the spec must be a mapping")
    models = _mapping(document.get("models") or {}, f"workflow {name}: models")
    dag = _mapping(document.get("dag"), f"workflow {name}: dag")
    knobs = dict(DEFAULTS)
    entries: dict[str, dict[str, Any]] = {}
    for key, value in models.items():
        if key in DEFAULTS:
            knobs[key] = _knob(value, f"workflow {name}: models.{key}")
        else:
            entries[str(key)] = _mapping(value, f"workflow {name}: models.{key}")
    successors = _successors(name, dag)
    functions = _functions(handler_source)
    nodes = {
        node: _node(name, node, entries.get(node), knobs, functions, handler) for node in successors
    }
    workflow = Workflow(name, url, handler, nodes, successors, knobs)
    _check_shape(workflow)
    return workflow


def _successors(name: str, dag: dict[str, Any]) -> dict[str, list[str]]:
    """Node → its successors, every node named once (spec order, successors after)."""
    successors: dict[str, list[str]] = {}
    for node, nexts in dag.items():
        if nexts is None:
            nexts = []
        if not isinstance(nexts, list) or not all(isinstance(n, str) for n in nexts):
            raise InvalidWorkflowError(f"workflow {name}: dag.{node} must be a list of node names")
        successors[str(node)] = [n.strip() for n in nexts if n.strip()]
    for nexts in list(successors.values()):
        for node in nexts:
            successors.setdefault(node, [])
    return successors


def _node(
    workflow: str,
    node: str,
    entry: dict[str, Any] | None,
    knobs: dict[str, int],
    functions: set[str],
    handler: str,
) -> WorkflowNode:
    model = f"{workflow}__{node}"
    if entry is None:
        if node not in functions:
            raise InvalidWorkflowError(
                f"workflow {workflow}: node {node} is neither a model under models: nor a "
                f"function of the handler {handler}"
            )
        return WorkflowNode(node, model, None, {**knobs, **FUNCTION_POOL})
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidWorkflowError(f"workflow {workflow}: models.{node} has no url")
    overrides = {
        key: _knob(entry[key], f"workflow {workflow}: models.{node}.{key}")
        for key in DEFAULTS
        if key in entry
    }
    return WorkflowNode(node, model, url, {**knobs, **overrides})


def _check_shape(workflow: Workflow) -> None:
    """One start node (TorchServe's rule: the request has one entry), then the engine's
    graph checks (a cycle)."""
    starts = [name for name in workflow.nodes if not workflow.predecessors(name)]
    if len(starts) != 1:
        found = ", ".join(starts) if starts else "none: every node has a predecessor, a cycle"
        raise InvalidWorkflowError(
            f"workflow {workflow.name}: a workflow has exactly one start node (found {found})"
        )
    check_graph(workflow.pipeline(timeout_s=0))


def _functions(handler_source: bytes) -> set[str]:
    """The top-level functions of the handler file, read without running it: the frontend
    runs no workflow code."""
    try:
        tree = ast.parse(handler_source)
    except SyntaxError as exc:
        raise InvalidWorkflowError(f"the workflow handler is not valid Python: {exc}") from None
    return {
        statement.name
        for statement in tree.body
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidWorkflowError(f"{where} must be a mapping")
    return value


def _knob(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidWorkflowError(f"{where} must be a whole number, not {value!r}")
    return value
