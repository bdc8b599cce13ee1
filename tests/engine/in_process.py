"""An engine run in the test's own process, on real archives, with no worker started: what
registration, the registry and snapshots do needs no model code to run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from modelserve.config import Settings
from modelserve.engine.engine import Engine
from modelserve.server import build_server_metrics

T = TypeVar("T")


def run_engine(
    store: Path, runtime_dir: Path, scenario: Callable[[Engine], Awaitable[T]], **settings: Any
) -> T:
    """Start an engine on ``store``, run ``scenario`` on it, stop it; ``settings`` override
    the server settings (snapshots are off unless they say otherwise)."""

    async def main() -> T:
        config = Settings(
            model_store=store,
            runtime_dir=runtime_dir,
            **{"enable_snapshots": False, **settings},
        )
        engine = Engine(config, build_server_metrics(config), "engine-tests")
        await engine.start()
        try:
            return await scenario(engine)
        finally:
            await engine.stop()

    return asyncio.run(main())
