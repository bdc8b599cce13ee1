"""One model call for a whole batch: concatenate requests along axis 0, split the outputs.

Requests that cannot be concatenated (different trailing shapes or dtypes, scalars, a model
with a fixed first dimension) or whose outputs do not split back by rows run one at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelserve_handlers.errors import BadInputError

from . import Tensors

Outcome = Tensors | BadInputError


def run_requests(
    call: Callable[[Tensors], Tensors], requests: dict[int, Tensors], concatenate: bool
) -> dict[int, Outcome]:
    """Each request's outputs (or why its input was refused), by batch index."""
    rows = _stackable_rows(list(requests.values())) if concatenate and len(requests) > 1 else None
    if rows is not None:
        try:
            outputs = call(_concatenate(list(requests.values())))
        except BadInputError:
            outputs = None  # one request's values upset the model: running each alone tells which
        parts = None if outputs is None else _split(outputs, rows)
        if parts is not None:
            return dict(zip(requests, parts, strict=True))
    return {index: _run_one(call, tensors) for index, tensors in requests.items()}


def _run_one(call: Callable[[Tensors], Tensors], tensors: Tensors) -> Outcome:
    try:
        return call(tensors)
    except BadInputError as exc:
        return exc


def _stackable_rows(requests: list[Tensors]) -> list[int] | None:
    """Each request's row count, when all have the same inputs, dtypes and trailing shapes."""
    first = requests[0]
    rows = []
    for tensors in requests:
        if tensors.keys() != first.keys():
            return None
        counts = {array.shape[0] if array.ndim else None for array in tensors.values()}
        if len(counts) != 1 or None in counts:
            return None
        for name, array in tensors.items():
            if array.dtype != first[name].dtype or array.shape[1:] != first[name].shape[1:]:
                return None
        rows.append(counts.pop())
    return rows


def _concatenate(requests: list[Tensors]) -> Tensors:
    return {name: np.concatenate([tensors[name] for tensors in requests]) for name in requests[0]}


def _split(outputs: Tensors, rows: list[int]) -> list[Tensors] | None:
    total = sum(rows)
    if not outputs or any(array.ndim == 0 or array.shape[0] != total for array in outputs.values()):
        return None
    boundaries = np.cumsum(rows)[:-1]
    pieces = {name: np.split(array, boundaries) for name, array in outputs.items()}
    return [{name: pieces[name][index] for name in outputs} for index in range(len(rows))]
