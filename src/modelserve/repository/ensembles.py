"""Triton ensembles (``platform: "ensemble"``) as pipelines of the engine: no archive and no
worker, each ``ensemble_scheduling`` step a request to its model through the data plane.

| config.pbtxt | pipeline |
| --- | --- |
| ``input`` / ``output`` | the pipeline's tensors (its v2 metadata) |
| ``step.model_name`` / ``model_version`` (-1: the default version) | the step's model |
| ``step.input_map`` (step input → ensemble tensor) | the step's ``inputs`` |
| ``step.output_map`` (step output → ensemble tensor) | the step's ``outputs`` |
"""

from __future__ import annotations

from collections import Counter

from modelserve.engine.pipelines import Pipeline, PipelineStep
from modelserve.repository.packing import config_json, metadata_tensors
from modelserve.repository.triton import ENSEMBLE, RepositoryError, TritonModel

# Triton's "latest version" of a step model: the default version here.
LATEST = -1


def ensemble_pipeline(model: TritonModel, timeout_s: float) -> Pipeline:
    """The pipeline ``model``'s ensemble_scheduling describes, under its newest served
    version; RepositoryError when it has no steps."""
    config = model.config
    steps = config.ensemble_scheduling.step
    if not steps:
        raise RepositoryError(
            f"model {model.name}: an ensemble needs ensemble_scheduling {{ step [ ... ] }}"
        )
    # Steps are named after their model; one used twice is told apart by its position.
    repeated = Counter(step.model_name for step in steps)
    pipeline_steps = [
        PipelineStep(
            name=step.model_name if repeated[step.model_name] == 1 else f"{step.model_name}#{i}",
            model=step.model_name,
            version=None if step.model_version == LATEST else str(step.model_version),
            inputs=dict(step.input_map),
            outputs=dict(step.output_map),
        )
        for i, step in enumerate(steps)
    ]
    tensors = metadata_tensors(config)
    return Pipeline(
        name=model.name,
        version=model.versions[-1].version,
        platform=ENSEMBLE,
        inputs=tensors["inputs"],
        outputs=tensors["outputs"],
        steps=pipeline_steps,
        timeout_s=timeout_s,
        config=config_json(config),
    )
