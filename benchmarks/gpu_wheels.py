"""The wheel folder the GPU check installs from, on a GPU machine without network.

    python benchmarks/gpu_wheels.py [--folder DIR]        (make gpu-wheels)

The GPU machine has CPython 3.12 with a CUDA torch installed system-wide, and no network. Run
here, this downloads every other wheel the project and the GPU check need (the project's
dependencies, the build backend that installs it, and what the GPU tests import
besides torch) for CPython 3.12 on manylinux x86_64 into an ignored folder, default
``.gpu-wheels/``; writes the requirements it resolved into the folder (``requirements.txt``);
checks with a dry run that pip installs them from the folder alone; lists the wheels and their
total size, and fails when that is over 60 MiB (what travels to the machine with the
repository is 64 MiB in all). torch's own dependencies are not fetched: they come with it.

:func:`install` is the GPU machine's half: a venv that sees the system's CUDA torch, with the
folder's wheels and the project installed into it offline. It needs only the standard library.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

from loadtest import REPO_ROOT

DEFAULT_FOLDER = REPO_ROOT / ".gpu-wheels"
REQUIREMENTS_FILE = "requirements.txt"
LIMIT_MIB = 60
MIB = 1024 * 1024
TARGET_PYTHON = (3, 12)
# What the GPU tests and the serving check import beyond the project's dependencies and torch;
# the versions come from pyproject.toml's extras. scikit-learn (the digits example's training)
# is left out: with scipy it is about 50 MB, which the folder cannot hold.
CHECK_PACKAGES = ("numpy", "pillow", "nvidia-ml-py", "pytest", "pytest-timeout")
# CUDA torch wheels (2.6 and later) are manylinux_2_28, so a machine running one takes those.
TARGET = [
    "--only-binary=:all:",
    "--implementation=cp",
    f"--python-version={TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}",
    *(f"--platform={tag}_x86_64" for tag in ("manylinux2014", "manylinux_2_17", "manylinux_2_28")),
]


def requirements() -> list[str]:
    """The project's dependencies, its build backend, and :data:`CHECK_PACKAGES` as its extras
    pin them, from pyproject.toml."""
    # Only the downloading side needs these (and Python 3.11's tomllib).
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = {
        canonicalize_name(Requirement(entry).name): entry
        for entries in project["project"]["optional-dependencies"].values()
        for entry in entries
    }
    missing = [name for name in CHECK_PACKAGES if name not in extras]
    if missing:
        raise SystemExit(f"pyproject.toml's extras do not name {', '.join(missing)}")
    return [
        *project["project"]["dependencies"],
        *project["build-system"]["requires"],
        *(extras[name] for name in CHECK_PACKAGES),
    ]


def pip(*args: str) -> None:
    """Run this interpreter's pip; a failure ends the program with pip's own message."""
    if subprocess.run([sys.executable, "-m", "pip", *args]).returncode != 0:
        raise SystemExit(f"pip {args[0]} failed (see above)")


def wheels(folder: Path) -> list[Path]:
    """The wheel files in ``folder``, by name."""
    return sorted(folder.glob("*.whl"))


def size_mib(folder: Path) -> float:
    """The folder's wheels together, in MiB."""
    return sum(path.stat().st_size for path in wheels(folder)) / MIB


def download(folder: Path) -> None:
    """Fill ``folder`` afresh, check it installs offline, list it; SystemExit when over the
    limit or incomplete."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    listed = folder / REQUIREMENTS_FILE
    listed.write_text("".join(f"{requirement}\n" for requirement in requirements()))
    pip("download", "--quiet", *TARGET, "--dest", str(folder), "--requirement", str(listed))
    # The GPU machine's install, rehearsed: resolve everything from the folder alone.
    offline = ["--no-index", f"--find-links={folder}", "--requirement", str(listed)]
    pip("install", "--quiet", "--dry-run", "--ignore-installed", *TARGET, *offline)
    for path in wheels(folder):
        print(f"{path.stat().st_size / MIB:7.2f} MiB  {path.name}")
    total = size_mib(folder)
    print(f"{len(wheels(folder))} wheels, {total:.1f} MiB in {folder} (limit {LIMIT_MIB} MiB)")
    if total > LIMIT_MIB:
        raise SystemExit(f"{folder} holds {total:.1f} MiB, over the {LIMIT_MIB} MiB limit")


def install(folder: Path, venv_dir: Path, deadline: float) -> Path:
    """A venv at ``venv_dir`` that sees the system's packages (its CUDA torch), with the
    folder's requirements and this repository's packages (no dependencies) installed offline;
    returns its python. Raises CalledProcessError when pip fails, TimeoutExpired when it is
    still at work at ``deadline`` (``time.monotonic()``)."""
    try:
        venv.create(venv_dir, system_site_packages=True, with_pip=True)
    except subprocess.CalledProcessError:
        # A system Python without ensurepip (Debian's python3 without python3-venv): the
        # venv's interpreter runs the system's pip, which installs into the venv.
        shutil.rmtree(venv_dir)
        venv.create(venv_dir, system_site_packages=True, with_pip=False)
    python = venv_dir / "bin" / "python"
    offline = [str(python), "-m", "pip", "install", "--quiet", "--no-index"]
    offline.append(f"--find-links={folder}")
    # Not editable: hatchling's editable build wants one more package, and this copy of the
    # repository is not edited while the check runs.
    for what in (["--requirement", str(folder / REQUIREMENTS_FILE)], ["--no-deps", str(REPO_ROOT)]):
        subprocess.run([*offline, *what], check=True, timeout=deadline - time.monotonic())
    return python


def main(argv: list[str] | None = None) -> None:
    """``make gpu-wheels``: download, check and list the folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="the wheel folder")
    download(parser.parse_args(argv).folder)


if __name__ == "__main__":
    main()
