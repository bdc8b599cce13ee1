"""KServe's own Python SDK models, read from the ``kserve`` wheel on PyPI, as a validator for
the KServe objects in deploy/kserve.

The SDK's generated model classes declare each field's type (``openapi_types``), its YAML name
(``attribute_map``) and which fields may not be missing (setters that refuse None). They are
read from the wheel's source with ``ast``, not imported: importing ``kserve`` pulls in its
model server and pins that modelserve's tests cannot share (protobuf, psutil). Kubernetes types
inside KServe objects (``V1Container`` …) are checked against Kubernetes' own schema by the
caller.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KSERVE_VERSION = "0.21.0"
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "object": (object,),
    "datetime": (str,),
}


@dataclass(frozen=True)
class Model:
    """One SDK model class: YAML name → (attribute, type), and the attributes it requires."""

    fields: dict[str, str]
    required: frozenset[str]


def download_wheel(directory: Path) -> Path:
    """The kserve wheel, from PyPI (cached in ``directory``)."""
    found = sorted(directory.glob(f"kserve-{KSERVE_VERSION}-*.whl"))
    if not found:
        download = ["download", "--quiet", "--no-deps", "--dest", str(directory)]
        subprocess.run(
            [sys.executable, "-m", "pip", *download, f"kserve=={KSERVE_VERSION}"],
            check=True,
            capture_output=True,
        )
        found = sorted(directory.glob(f"kserve-{KSERVE_VERSION}-*.whl"))
    return found[0]


def _literal_dict(node: ast.ClassDef, name: str) -> dict[str, str]:
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in statement.targets
        ):
            return ast.literal_eval(statement.value)
    return {}


def _required(node: ast.ClassDef) -> frozenset[str]:
    required = set()
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef) and "must not be `None`" in ast.unparse(
            statement
        ):
            required.add(statement.name)
    return frozenset(required)


def read_models(wheel: Path) -> dict[str, Model]:
    """Class name → Model, for every model in the wheel's ``kserve/models``."""
    models = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not re.fullmatch(r"kserve/models/v1\w+\.py", name):
                continue
            for node in ast.parse(archive.read(name)).body:
                if not isinstance(node, ast.ClassDef):
                    continue
                types = _literal_dict(node, "openapi_types")
                yaml_names = _literal_dict(node, "attribute_map")
                fields = {yaml_names[attribute]: types[attribute] for attribute in types}
                required = frozenset(yaml_names[a] for a in _required(node))
                models[node.name] = Model(fields, required)
    return models


def validate(
    value: Any,
    type_name: str,
    models: dict[str, Model],
    kubernetes_type: Callable[[Any, str, str], None],
    path: str = "",
) -> None:
    """Raise AssertionError naming ``path`` where ``value`` does not fit ``type_name``: an
    unknown field, a missing required one, a wrong type. ``kubernetes_type(value, type, path)``
    checks the Kubernetes types (``V1Container`` …) the SDK does not define itself."""
    if match := _LIST.match(type_name):
        assert isinstance(value, list), f"{path}: expected a list"
        for index, item in enumerate(value):
            validate(item, match.group(1), models, kubernetes_type, f"{path}[{index}]")
        return
    if match := _DICT.match(type_name):
        assert isinstance(value, dict), f"{path}: expected a mapping"
        for key, item in value.items():
            validate(item, match.group(1), models, kubernetes_type, f"{path}.{key}")
        return
    if type_name in _SCALARS:
        assert isinstance(value, _SCALARS[type_name]), f"{path}: expected {type_name}"
        return
    model = models.get(type_name)
    if model is None:
        kubernetes_type(value, type_name, path)
        return
    assert isinstance(value, dict), f"{path}: expected a {type_name} mapping"
    unknown = set(value) - set(model.fields)
    assert not unknown, f"{path}: {type_name} has no field {sorted(unknown)}"
    missing = model.required - set(value)
    assert not missing, f"{path}: {type_name} needs {sorted(missing)}"
    for key, item in value.items():
        validate(item, model.fields[key], models, kubernetes_type, f"{path}.{key}")
