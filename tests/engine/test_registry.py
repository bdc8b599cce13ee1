"""The registry's rules, on versions registered in-process from real archives: names,
default versions, and what may be registered (check_free) or removed (check_removable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from in_process import run_engine

from modelserve.engine.engine import Engine, RegisterOptions
from modelserve.engine.errors import (
    BadRequestException,
    ConflictStatusException,
    InvalidModelVersionException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)


async def _register(engine: Engine, *urls: str) -> None:
    for url in urls:
        await engine.register(RegisterOptions(url=url))


def test_names_and_default_versions(model_store: Path, tmp_path: Path) -> None:
    async def scenario(engine: Engine) -> None:
        await _register(engine, "probe.mar", "other.mar", "probe_v2.mar")
        registry = engine.registry
        assert registry.names() == ["other", "probe"]
        assert len(registry) == 2
        # The first version registered is the default, until set_default says otherwise.
        assert registry.get("probe").version == "1.0"
        assert registry.get("probe", "2.0").version == "2.0"
        registry.set_default("probe", "2.0")
        assert registry.get("probe").version == "2.0"
        assert sorted(v.version for v in registry.all_versions()) == ["1.0", "1.0", "2.0"]
        with pytest.raises(ModelNotFoundException, match="Model not found: nobody"):
            registry.get("nobody")
        with pytest.raises(ModelVersionNotFoundException, match="Model version: 9 does not"):
            registry.get("probe", "9")
        with pytest.raises(ModelVersionNotFoundException, match="Model version 9 does not"):
            registry.set_default("probe", "9")

    run_engine(model_store, tmp_path / "run", scenario)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\x00b", "tab\there"])
def test_check_free_refuses_names_no_path_can_address(
    model_store: Path, tmp_path: Path, name: str
) -> None:
    async def scenario(engine: Engine) -> None:
        with pytest.raises(BadRequestException, match="Invalid model name"):
            engine.registry.check_free(name, "1.0")
        with pytest.raises(BadRequestException, match="Invalid model version"):
            engine.registry.check_free("fine", name)
        engine.registry.check_free("fine", "1.0")  # a plain name and version are free

    run_engine(model_store, tmp_path / "run", scenario)


def test_check_free_refuses_a_registered_version_only(model_store: Path, tmp_path: Path) -> None:
    async def scenario(engine: Engine) -> None:
        await _register(engine, "probe.mar")
        with pytest.raises(ConflictStatusException, match=r"1\.0 is already registered"):
            engine.registry.check_free("probe", "1.0")
        engine.registry.check_free("probe", "2.0")
        with pytest.raises(ConflictStatusException):
            await _register(engine, "probe.mar")

    run_engine(model_store, tmp_path / "run", scenario)


def test_check_removable_protects_a_default_with_siblings(
    model_store: Path, tmp_path: Path
) -> None:
    async def scenario(engine: Engine) -> None:
        await _register(engine, "probe.mar", "probe_v2.mar")
        registry = engine.registry
        with pytest.raises(InvalidModelVersionException, match="Cannot remove default"):
            registry.check_removable("probe", None)
        with pytest.raises(InvalidModelVersionException):
            registry.check_removable("probe", "1.0")
        sibling = registry.check_removable("probe", "2.0")
        registry.remove(sibling)
        registry.remove(sibling)  # a version already gone: nothing happens
        assert list(registry.entry("probe").versions) == ["1.0"]
        # The last version, default or not, may go; then the name goes with it.
        registry.remove(registry.check_removable("probe", None))
        assert registry.names() == []

    run_engine(model_store, tmp_path / "run", scenario)
