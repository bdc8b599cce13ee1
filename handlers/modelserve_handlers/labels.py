"""Class index → label name, from an archive's ``index_to_name.json``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

LABEL_MAPPING_FILE = "index_to_name.json"


def load_label_mapping(mapping_file_path: str | os.PathLike[str]) -> dict[str, str] | None:
    """Read ``{"<class index>": "<label>"}``; None when the file does not exist.

    Accepts TorchServe's variants too: a label given as a list (its last item is the name,
    as in ImageNet's ``["n01440764", "tench"]``) and the older ``{"object_type_names": [...]}``.
    """
    if not os.path.isfile(mapping_file_path):
        log.info("%s is missing: results will name classes by index", mapping_file_path)
        return None
    with open(mapping_file_path, encoding="utf-8") as mapping_file:
        mapping = json.load(mapping_file)
    if not isinstance(mapping, dict):
        raise ValueError(f'{mapping_file_path}: expected a JSON object {{"<index>": "<label>"}}')
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(index): name for index, name in enumerate(names)}
    labels = {}
    for key, value in mapping.items():
        label = value[-1] if isinstance(value, list) and value else value
        if not isinstance(label, str):
            raise ValueError(
                f"{mapping_file_path}: the label of class {key} must be a string or a list "
                f"of strings, got {value!r}"
            )
        labels[str(key)] = label
    return labels


def label_name(class_index: Any, mapping: dict[str, str] | None) -> str:
    """The label of a class; its index as a string when there is no mapping or no entry.

    TorchServe raises KeyError on a class missing from the mapping, failing the whole batch;
    naming the class by its index keeps the answer useful.
    """
    key = str(class_index)
    return mapping.get(key, key) if mapping is not None else key


def map_class_to_label(
    probs: Sequence[Sequence[float]],
    mapping: dict[str, str] | None = None,
    lbl_classes: Iterable[Sequence[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Per row, ``{label: probability}``; ``lbl_classes`` gives each row's class indices
    (default: 0, 1, 2 … as many as the row has values)."""
    if not isinstance(probs, list):
        raise TypeError("map_class_to_label needs probabilities as a list (call .tolist())")
    if mapping is not None and not isinstance(mapping, dict):
        raise TypeError("the label mapping must be a dict")
    if lbl_classes is None:
        lbl_classes = (range(len(row)) for row in probs)
    return [
        {label_name(index, mapping): prob for index, prob in zip(classes, row, strict=True)}
        for classes, row in zip(lbl_classes, probs, strict=True)
    ]
