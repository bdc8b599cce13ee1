"""The models a server registers at start (``--models`` / ``load_models``), and which failed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from modelserve import archive
from modelserve.engine.errors import ConflictStatusException, ServingError
from modelserve.engine.outcomes import Outcome
from modelserve.engine.registration import RegisterOptions

log = logging.getLogger("modelserve.engine")

# Registers one version: the engine's register call.
Register = Callable[[RegisterOptions], Awaitable[Outcome]]


@dataclass(slots=True)
class StartupOutcome:
    """What became of one ``--models`` / ``load_models`` entry at start."""

    entry: str
    # The registered model's name; None when the entry could not be registered.
    model_name: str | None
    # Why it does not serve; None once registered (its workers may still be loading).
    error: str | None = None


class StartupModels:
    """Registers the startup entries once; health reads what is still loading or failed."""

    def __init__(self) -> None:
        # Until the startup models are registered the server is not ready, whatever the
        # (still empty) registry says.
        self.loading = True
        # Startup entries that could not be registered (name -> why), until a model of that
        # name is registered: they count as models that should serve and do not.
        self.failures: dict[str, str] = {}

    def registered(self, name: str) -> None:
        """A model of ``name`` was registered: an entry of that name failing is history."""
        self.failures.pop(name, None)

    async def load(
        self, entries: list[str], model_store: Path | None, register: Register
    ) -> list[StartupOutcome]:
        """Register ``[name=]url`` entries (or ``all`` of ``model_store``) with ``register``.

        Workers load in the background. An entry that cannot be registered is logged and
        recorded in ``failures``; one already registered (restored from a snapshot) keeps
        its restored settings.
        """
        try:
            if any(entry.lower() == "all" for entry in entries):
                if model_store is None:
                    error = "--models all needs a model store (--model-store DIR)"
                    log.error("%s", error)
                    self.failures["all"] = error
                    return [StartupOutcome("all", None, error)]
                entries = [path.name for path in archive.list_model_store(model_store)]
            return [await self._register(entry, register) for entry in entries]
        finally:
            self.loading = False

    async def _register(self, entry: str, register: Register) -> StartupOutcome:
        name, _, url = entry.rpartition("=")
        options = RegisterOptions(
            url=url, model_name=name or None, synchronous=False, loaded_at_startup=True
        )
        try:
            outcome = await register(options)
        except ConflictStatusException:
            log.info("startup model %s: already registered (restored); kept as restored", entry)
            return StartupOutcome(entry, name or Path(url).stem)
        except ServingError as exc:
            log.error("startup model %s not loaded: %s", entry, exc.message)
            self.failures[name or Path(url).stem] = exc.message
            return StartupOutcome(entry, None, exc.message)
        return StartupOutcome(entry, outcome.model_name)
