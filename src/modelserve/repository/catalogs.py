"""Where model control finds models: a Triton model repository, or TensorFlow Serving's base
paths (one model, or the models of a ModelServerConfig file). Each reads a model as a
``TritonModel`` (its served versions and the files to pack), so control.py serves both alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from google.protobuf import text_format

from modelserve.config import Settings
from modelserve.repository.proto.model_config_pb2 import ModelConfig, ModelVersionPolicy
from modelserve.repository.proto.model_server_config_pb2 import ModelConfig as TfModelConfig
from modelserve.repository.proto.model_server_config_pb2 import (
    ModelServerConfig,
    ServableVersionPolicy,
)
from modelserve.repository.triton import (
    VERSION_NAME,
    RepositoryError,
    TritonModel,
    TritonVersion,
    model_directories,
    read_model,
    served_versions,
)


class ModelNotInCatalog(RepositoryError):
    """No source holds a model of that name."""


class Catalog(Protocol):
    """A source of models."""

    def check(self) -> None:
        """RepositoryError when the source cannot be read at all (it stops the start)."""

    def names(self) -> list[str]:
        """Every model the source holds."""

    def read(self, name: str, override: str | None) -> TritonModel:
        """One model; ``override``: a configuration in Triton's JSON (Triton only)."""


class TritonCatalog:
    """Triton model repositories (``model_repository``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check(self) -> None:
        model_directories(self._settings.model_repository)

    def names(self) -> list[str]:
        found, twice = model_directories(self._settings.model_repository)
        return sorted([*found, *twice])  # those two repositories hold: their read says so

    def read(self, name: str, override: str | None) -> TritonModel:
        found, twice = model_directories(self._settings.model_repository)
        if name in twice:
            raise RepositoryError(twice[name])
        if name not in found:
            raise ModelNotInCatalog(f"no model {name} in the model repositories")
        settings = self._settings
        return read_model(
            found[name], settings.strict_model_config, settings.model_config_name, override
        )


class TfServingCatalog:
    """TensorFlow Serving's layout: ``<base_path>/<version>/saved_model.pb``, for
    ``model_name`` + ``model_base_path`` or each model of ``model_config_file``.

    The config file is read once, at the first question; only ``reread`` reads it again (model
    control calls it every ``model_config_file_poll_wait_seconds``, as TF Serving polls it).
    The base paths are read at every ``read``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._last_read: dict[str, TfModelConfig] | None = None

    def reread(self) -> None:
        """Read the config file again. RepositoryError if it cannot be read or parsed; the
        last read then stands."""
        self._last_read = self._read_configs()

    def replace(self, config: ModelServerConfig) -> None:
        """Serve what ``config`` lists instead (TF Serving's HandleReloadConfigRequest) until
        the config file is read again. RepositoryError for a config that lists no models
        by name and base path."""
        if config.WhichOneof("config") != "model_config_list":
            raise RepositoryError("the new config must be a model_config_list")
        listed = list(config.model_config_list.config)
        unnamed = [entry for entry in listed if not entry.name or not entry.base_path]
        if unnamed:
            raise RepositoryError("every model of the new config needs a name and a base_path")
        self._last_read = {entry.name: entry for entry in listed}

    def check(self) -> None:
        for config in self._configs().values():
            if not Path(config.base_path).is_dir():
                raise RepositoryError(
                    f"model {config.name}: base path {config.base_path} is not a directory"
                )

    def names(self) -> list[str]:
        return sorted(self._configs())

    def read(self, name: str, override: str | None) -> TritonModel:
        if override is not None:
            raise RepositoryError("a TF Serving model takes no configuration override")
        configs = self._configs()
        if name not in configs:
            raise ModelNotInCatalog(f"no model {name} in the TF Serving config")
        config = configs[name]
        base = Path(config.base_path)
        if config.model_platform not in ("", "tensorflow"):
            raise RepositoryError(
                f"model {name}: model_platform {config.model_platform!r} is not served"
            )
        available: list[str] = []
        if base.is_dir():
            numeric = [p.name for p in base.iterdir() if VERSION_NAME.fullmatch(p.name)]
            available = sorted((each for each in numeric if (base / each).is_dir()), key=int)
        versions = served_versions(_triton_policy(config.model_version_policy), available, name)
        labels = {label: str(version) for label, version in config.version_labels.items()}
        return TritonModel(
            name,
            base,
            ModelConfig(name=name, backend="tensorflow"),
            "tensorflow",
            [TritonVersion(version, base / version) for version in versions],
            auto_completed=True,
            version_labels=labels,
        )

    def _configs(self) -> dict[str, TfModelConfig]:
        if self._last_read is None:
            self._last_read = self._read_configs()
        return self._last_read

    def _read_configs(self) -> dict[str, TfModelConfig]:
        settings = self._settings
        if settings.model_config_file is None:
            single = ModelServerConfig().model_config_list.config.add()
            single.name = settings.model_name or "default"
            single.base_path = str(settings.model_base_path)
            return {single.name: single}
        try:
            parsed = text_format.Parse(settings.model_config_file.read_text(), ModelServerConfig())
        except (OSError, text_format.ParseError) as exc:
            raise RepositoryError(f"model_config_file {settings.model_config_file}: {exc}") from exc
        return {config.name: config for config in parsed.model_config_list.config}


def _triton_policy(policy: ServableVersionPolicy) -> ModelVersionPolicy:
    """TF Serving's version policy as Triton's: the same three choices, the same meaning."""
    triton = ModelVersionPolicy()
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        triton.all.SetInParent()
    elif choice == "specific":
        triton.specific.versions.extend(policy.specific.versions)
    elif choice == "latest":
        triton.latest.num_versions = policy.latest.num_versions
    return triton


def catalog_for(settings: Settings) -> Catalog | None:
    """The source the settings name; None when they name none."""
    tf_serving = settings.model_base_path is not None or settings.model_config_file is not None
    if settings.model_repository and tf_serving:
        raise RepositoryError("serve a Triton model repository or TF Serving models, not both")
    if settings.model_repository:
        return TritonCatalog(settings)
    return TfServingCatalog(settings) if tf_serving else None
