"""Build the TorchServe workflow example into the model store ``make run`` serves: the node
models ``cat_dog.mar`` and ``breed.mar`` (handler-only archives of ``cat_dog.py`` and
``breed.py``) and ``dogs.war``, the workflow of ``dog_breed.yaml`` with the function nodes of
``workflow_handler.py`` (docs/pipelines.md). Run with the project's virtualenv (``make
example`` does)::

    .venv/bin/python examples/workflows/build.py

Everything is rebuilt on each run; it takes about a second.
"""

from __future__ import annotations

from pathlib import Path

from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_archiver.workflow import WorkflowOptions, build_workflow_archive

EXAMPLE_DIR = Path(__file__).resolve().parent
MODEL_STORE = EXAMPLE_DIR.parent / "model_store"
NODE_MODELS = ("cat_dog", "breed")


def main() -> None:
    MODEL_STORE.mkdir(parents=True, exist_ok=True)
    for name in NODE_MODELS:
        options = ArchiveOptions(
            model_name=name,
            version="1.0",
            handler=str(EXAMPLE_DIR / f"{name}.py"),
            export_path=MODEL_STORE,
            force=True,
        )
        print(f"wrote {build_archive(options).relative_to(EXAMPLE_DIR.parent.parent)}")
    workflow = WorkflowOptions(
        workflow_name="dogs",
        spec_file=str(EXAMPLE_DIR / "dog_breed.yaml"),
        handler=str(EXAMPLE_DIR / "workflow_handler.py"),
        export_path=MODEL_STORE,
        force=True,
    )
    print(f"wrote {build_workflow_archive(workflow).relative_to(EXAMPLE_DIR.parent.parent)}")


if __name__ == "__main__":
    main()
