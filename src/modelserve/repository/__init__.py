"""Model repositories in other servers' layouts, served unchanged: Triton's
(``modelserve start --model-repository DIR``, or ``tritonserver``'s own flags).

Each served version of each model is packed for the built-in ``tensor`` handler into a private
temporary model store (packing.py), which the server loads at start, as ``modelserve serve``
does for one file. A model that cannot be served is named, with why, and the others start.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelserve.cli_flags import whole_number
from modelserve.config import ConfigError, Settings
from modelserve.repository.packing import pack_model
from modelserve.repository.triton import RepositoryError, read_repositories

CONTROL_MODES = ("none", "poll", "explicit")


def add_arguments(start: argparse.ArgumentParser) -> None:
    """The repository flags of ``modelserve start``, under Triton's names."""
    start.add_argument(
        "--model-repository",
        action="append",
        type=Path,
        metavar="DIR",
        help="serve a Triton model repository (<DIR>/<model>/config.pbtxt, numeric versions); "
        "repeatable",
    )
    start.add_argument(
        "--model-control-mode",
        choices=CONTROL_MODES,
        default="none",
        help="none (default): load every model at start; poll and explicit are not served yet",
    )
    start.add_argument(
        "--strict-model-config",
        "--disable-auto-complete-config",
        dest="strict_model_config",
        action="store_true",
        help="require config.pbtxt (by default a model without one is served from its file)",
    )
    start.add_argument(
        "--model-config-name",
        metavar="NAME",
        help="read <model>/configs/NAME instead of config.pbtxt where it exists",
    )
    start.add_argument(
        "--http-port", dest="port", type=whole_number(0, 65535), help="Triton's name for --port"
    )


@dataclass(frozen=True)
class PreparedRepositories:
    """The private store the models were packed into, the startup entries that load them,
    and the models that cannot be served, with why."""

    store: Path
    startup_models: list[str]
    failures: dict[str, str]

    def settings_for(self, settings: Settings) -> Settings:
        """``settings`` serving the packed store instead of any configured ``model_store`` (no
        snapshot: the store is temporary)."""
        return settings.model_copy(update={"model_store": self.store, "enable_snapshots": False})

    def note(self) -> str:
        """What the console says after the start: the models not served, and why."""
        return "\n".join(f"  not serving {name}: {why}" for name, why in self.failures.items())


def prepared_from(
    args: argparse.Namespace,
) -> contextlib.AbstractContextManager[PreparedRepositories]:
    """``prepared`` for the flags ``add_arguments`` defines."""
    return prepared(
        args.model_repository,
        args.model_control_mode,
        args.strict_model_config,
        args.model_config_name,
    )


@contextlib.contextmanager
def prepared(
    roots: list[Path], control_mode: str, strict: bool, config_name: str | None
) -> Iterator[PreparedRepositories]:
    """Read and pack the repositories into a temporary store, removed when the context ends.
    ConfigError for what stops the start (a repository that is not a directory, a control
    mode not served yet)."""
    if control_mode != "none":
        raise ConfigError(
            f"--model-control-mode {control_mode} is not served yet; use none (load every "
            "model at start)"
        )
    try:
        repository = read_repositories(roots, strict=strict, config_name=config_name)
    except RepositoryError as exc:
        raise ConfigError(str(exc)) from exc
    with tempfile.TemporaryDirectory(prefix="modelserve-repository-") as directory:
        store, scratch = Path(directory) / "store", Path(directory) / "scratch"
        store.mkdir()
        scratch.mkdir()
        failures = dict(repository.failures)
        entries: list[str] = []
        for model in repository.models:
            try:
                entries += pack_model(model, store, scratch)
            except RepositoryError as exc:
                failures[model.name] = str(exc)
        yield PreparedRepositories(store, entries, failures)
