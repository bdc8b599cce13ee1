"""docker/constraints.txt, the versions the image installs (and ``make venv`` installs with), is
current: it is exactly what docker/constraints.py writes from this virtualenv, and each pin lies
within what pyproject.toml asks for."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "docker" / "constraints.txt"


def _writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "image_constraints", ROOT / "docker" / "constraints.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_constraints_file_is_what_the_virtualenv_has() -> None:
    writer = _writer()
    expected = writer.constraints_text(writer.image_packages())
    assert CONSTRAINTS.read_text() == expected, "docker/constraints.txt is stale: make constraints"


def test_every_requirement_the_image_installs_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    writer = _writer()
    requirements = [*project["dependencies"]]
    for extra in writer.IMAGE_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = _pins()
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    # The pins never carry a local label, so torch's pin admits the CPU and the CUDA build.
    assert all(version.local is None for version in pins.values())
