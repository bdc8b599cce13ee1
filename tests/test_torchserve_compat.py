"""A handler written for TorchServe, archived by the real torch-model-archiver, served as is.

The handler imports ``ts.*`` names; without TorchServe installed, the worker provides them
from ``modelserve_handlers/compat``. Its answers, its custom metrics and its
``PredictionException`` status must reach the client as they would from TorchServe.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from support import HANDLERS, RunningServer, start_server
from torch import nn

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning")

TORCH_MODEL_ARCHIVER = Path(sys.executable).parent / "torch-model-archiver"
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def scaler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, nn.Module]]:
    build = tmp_path_factory.mktemp("scaler_build")
    store = tmp_path_factory.mktemp("scaler_store")
    torch.manual_seed(0)
    model = torch.jit.script(nn.Linear(4, 3).eval())
    model.save(str(build / "linear.pt"))
    (build / "model-config.yaml").write_text("handler:\n  profile: true\n")
    command = [
        str(TORCH_MODEL_ARCHIVER),
        "--model-name", "scaler",
        "--version", "1.0",
        "--serialized-file", str(build / "linear.pt"),
        "--handler", str(HANDLERS / "torchserve_scaler.py"),
        "--config-file", str(build / "model-config.yaml"),
        "--export-path", str(store),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    server = start_server(tmp_path_factory.mktemp("scaler_server"), store)
    response = httpx.post(
        server.management + "/models",
        params={"url": "scaler.mar", "initial_workers": 1},
        timeout=120,
    )
    assert response.status_code == 200, response.text + server.log()
    yield server, model
    server.stop()


def _predict(server: RunningServer, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.inference}/predictions/scaler", json=body, headers=headers)


def _handler_metric(server: RunningServer, name: str) -> float | None:
    """The value of one of the model's handler metrics on /metrics, None when absent."""
    text = httpx.get(server.metrics + "/metrics", params={"name[]": name}).text
    labels = {"ModelName": "scaler", "Level": "Model", "Hostname": HOST}
    samples = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels == labels
    ]
    return samples[0] if samples else None


def test_answers_equal_the_model_in_process(scaler) -> None:
    server, model = scaler
    features = [[1.0, -2.0, 0.5, 3.0], [0.0, 0.25, -1.5, 2.0]]
    with torch.inference_mode():
        outputs = model(torch.tensor(features))
    for row, output in zip(features, outputs, strict=True):
        for scale in (1.0, 2.5):
            headers = {} if scale == 1.0 else {"X-Scale": str(scale)}
            response = _predict(server, row, **headers)
            assert response.status_code == 200, response.text
            assert response.json() == pytest.approx((output * scale).tolist(), abs=1e-6)


def test_custom_metrics_reach_the_metrics_plane(scaler) -> None:
    server, _ = scaler
    before = _handler_metric(server, "CompatRows") or 0.0
    for _ in range(3):
        assert _predict(server, [1.0, 2.0, 3.0, 4.0]).status_code == 200
    assert _handler_metric(server, "CompatRows") == before + 3
    assert _handler_metric(server, "CompatPostprocessTime") >= 0
    # handler.profile in the model config: BaseHandler's @timed stages report their time
    assert _handler_metric(server, "ts_handler_inference") >= 0


def test_prediction_exception_sets_status_and_message(scaler) -> None:
    server, _ = scaler
    response = _predict(server, "teapot")
    assert response.status_code == 418
    assert response.json() == {"code": 418, "type": "PredictionException", "message": "nope"}
    assert _predict(server, [0.0, 0.0, 0.0, 0.0]).status_code == 200  # the worker lives on


def _python(code: str, pythonpath: Path | None = None) -> str:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_ts_names_are_modelserve_classes() -> None:
    output = _python(
        """
        from modelserve.worker.ts_compat import TS_COMPAT_DIR, enable_ts_compat
        assert enable_ts_compat()

        import modelserve.worker.context as context
        import modelserve.worker.metrics as metrics
        from modelserve_handlers import base_handler, errors, image_classifier, image_segmenter
        from modelserve_handlers import labels, object_detector, text_classifier, timing
        from modelserve_handlers import vision_handler
        import ts.context
        import ts.handler_utils.timer
        import ts.metrics.dimension
        import ts.metrics.metric_type_enum
        import ts.torch_handler.base_handler
        import ts.torch_handler.image_classifier
        import ts.torch_handler.image_segmenter
        import ts.torch_handler.object_detector
        import ts.torch_handler.text_classifier
        import ts.torch_handler.vision_handler
        import ts.utils.util as util

        assert ts.__file__.startswith(str(TS_COMPAT_DIR))
        assert ts.context.Context is context.Context
        assert ts.context.RequestProcessor is context.RequestProcessor
        assert ts.metrics.dimension.Dimension is metrics.Dimension
        assert ts.metrics.metric_type_enum.MetricTypes is metrics.MetricTypes
        assert ts.handler_utils.timer.timed is timing.timed
        assert ts.torch_handler.base_handler.BaseHandler is base_handler.BaseHandler
        assert ts.torch_handler.vision_handler.VisionHandler is vision_handler.VisionHandler
        assert ts.torch_handler.image_classifier.ImageClassifier is image_classifier.ImageClassifier
        assert ts.torch_handler.image_segmenter.ImageSegmenter is image_segmenter.ImageSegmenter
        assert ts.torch_handler.object_detector.ObjectDetector is object_detector.ObjectDetector
        assert ts.torch_handler.text_classifier.TextClassifier is text_classifier.TextClassifier
        assert util.PredictionException is errors.PredictionException
        assert util.load_label_mapping is labels.load_label_mapping
        assert util.map_class_to_label is labels.map_class_to_label
        assert util.list_classes_from_module(labels) == []
        assert util.list_classes_from_module(errors, ValueError) == [errors.BadInputError]
        assert util.CLEANUP_REGEX.sub("", "<b>x</b>&amp;") == "x"
        print("ok")
        """
    )
    assert output == "ok"


def test_an_installed_torchserve_keeps_precedence(tmp_path: Path) -> None:
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "__init__.py").write_text("REAL = True\n")
    output = _python(
        """
        from modelserve.worker.ts_compat import enable_ts_compat
        assert not enable_ts_compat()
        import ts
        print(ts.REAL)
        """,
        pythonpath=tmp_path,
    )
    assert output == "True"
