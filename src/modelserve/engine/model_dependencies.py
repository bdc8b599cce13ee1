"""An archive's own Python packages (its manifest's ``requirementsFile``), installed at
registration when ``install_py_dep_per_model=true``.

pip installs them into ``<model_dir>/.deps``, which the model's workers put first on their
import path, so a model gets the versions it asked for without touching the server's
environment (TorchServe installs into the model directory itself, with the same effect).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from pathlib import Path

from modelserve.engine.errors import ModelException
from modelserve.engine.worker_process import output_lines

log = logging.getLogger("modelserve.engine.dependencies")

DEPENDENCIES_DIR = ".deps"
# pip's last lines say what failed; the full output is in the server log.
ERROR_TAIL_LINES = 5


async def install_requirements(
    model_name: str, model_dir: Path, requirements_file: str, timeout_s: float
) -> Path:
    """pip-install ``requirements_file`` (relative to ``model_dir``) into its .deps directory.

    Returns that directory. pip's output goes to the server log line by line. Raises
    ModelException (400) when pip fails or runs past ``timeout_s`` seconds, with pip's last
    lines in the message.
    """
    failure = f"Custom pip package installation failed for model {model_name}"
    requirements = model_dir / requirements_file
    if not requirements.resolve().is_relative_to(model_dir.resolve()):
        raise ModelException(f"{failure}: requirementsFile {requirements_file!r} leaves the model")
    if not requirements.is_file():
        raise ModelException(f"{failure}: the archive has no {requirements_file}")
    target = model_dir / DEPENDENCIES_DIR
    command = [sys.executable, "-m", "pip", "install", "--no-input"]
    command += ["--disable-pip-version-check", "--target", str(target), "-r", str(requirements)]
    log.info("installing the Python dependencies of model %s: %s", model_name, " ".join(command))
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=model_dir,
    )
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)

    async def run_pip() -> int:
        assert process.stdout is not None
        async for raw_line in output_lines(process.stdout):
            line = raw_line.decode(errors="replace").rstrip()
            log.info("pip (%s): %s", model_name, line)
            if line.strip():
                # The client needs the file names, not where the server keeps the model.
                tail.append(line.strip().replace(f"{model_dir}/", ""))
        return await process.wait()

    try:
        code = await asyncio.wait_for(run_pip(), timeout_s)
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
        raise ModelException(
            f"{failure}: pip did not finish within startup_timeout ({timeout_s:g} s)"
        ) from None
    finally:
        # A timeout, or a registration cancelled at shutdown, must not leave pip running.
        if process.returncode is None:
            process.kill()
            await process.wait()
    if code != 0:
        log.error("%s: pip exited with code %d", failure, code)
        raise ModelException(f"{failure}: " + "\n".join(tail))
    log.info("installed the Python dependencies of model %s into %s", model_name, target)
    return target
