"""deploy/: every Kustomize overlay renders with ``kubectl kustomize``; what it renders validates
offline against Kubernetes' own schemas (kubernetes-validate, strict: no unknown field), and
the KServe objects against KServe's SDK models; and the parts agree with each other and with the
server: probe paths the server answers without a key, a drain shorter than the grace period,
HPA metrics that the prometheus-adapter rules define from metrics the server exports. The image
runs as the rendered ServingRuntime says in tests/test_container_image.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from kserve_sdk_models import download_wheel, read_models, validate
from kubernetes_validate import utils as schemas

from modelserve.api.auth import HEALTH_PATHS
from modelserve.config import parse_properties

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ("kubernetes/overlays/cpu", "kubernetes/overlays/gpu", "kserve")
KUBERNETES_VERSION = "1.33.0"
KSERVE_KINDS = {"ClusterServingRuntime": "V1alpha1ServingRuntime"}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed"
)


def render(overlay: str) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/OVERLAY``, parsed."""
    output = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in objects}


def _kubernetes_type(value: Any, type_name: str, path: str) -> None:
    """A Kubernetes type inside a KServe object (``V1Container``, ``V1ObjectMeta`` …), against
    Kubernetes' strict schema of that type (core/v1 or meta/v1)."""
    directory = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    definitions = schemas.schema_contents(f"{directory}/_definitions.json", KUBERNETES_VERSION)
    kind = type_name.removeprefix("V1")
    (key,) = [
        key
        for key in (f"io.k8s.api.core.v1.{kind}", f"io.k8s.apimachinery.pkg.apis.meta.v1.{kind}")
        if key in definitions["$defs"]
    ]
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    schema = {"$ref": f"{definitions.get('$id', '')}#/$defs/{key}"}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = [error.message for error in validator.iter_errors(value)]
    assert not errors, f"{path} ({type_name}): {errors}"


@pytest.fixture(scope="module")
def kserve_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("kserve_wheel")
    try:
        wheel = download_wheel(cache)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"the kserve wheel could not be fetched from PyPI: {exc.stderr[-300:]}")
    return read_models(wheel)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates(overlay: str, kserve_models: dict) -> None:
    objects = render(overlay)
    assert objects
    for document in objects:
        kind = document["kind"]
        if kind in KSERVE_KINDS:
            validate(document, KSERVE_KINDS[kind], kserve_models, _kubernetes_type, kind)
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_inference_service_example_validates(kserve_models: dict) -> None:
    document = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    validate(document, "V1beta1InferenceService", kserve_models, _kubernetes_type, "isvc")
    runtime = by_kind(render("kserve"))["ClusterServingRuntime"]
    predictor = document["spec"]["predictor"]["model"]
    assert predictor["runtime"] == runtime["metadata"]["name"]
    formats = {entry["name"] for entry in runtime["spec"]["supportedModelFormats"]}
    assert predictor["modelFormat"]["name"] in formats
    assert predictor["protocolVersion"] in runtime["spec"]["protocolVersions"]


def test_a_validator_that_can_fail(kserve_models: dict) -> None:
    """The checks above reject what Kubernetes and KServe would: an unknown field, a missing
    required one, a wrong type."""
    runtime = by_kind(render("kserve"))["ClusterServingRuntime"]
    runtime["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(AssertionError, match="imagePullPolice"):
        validate(runtime, "V1alpha1ServingRuntime", kserve_models, _kubernetes_type, "r")
    del runtime["spec"]["containers"]
    with pytest.raises(AssertionError, match=r"needs .*containers"):
        validate(runtime, "V1alpha1ServingRuntime", kserve_models, _kubernetes_type, "r")
    deployment = by_kind(render("kubernetes/overlays/cpu"))["Deployment"]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ("kubernetes/overlays/cpu", "kubernetes/overlays/gpu"))
def test_the_deployment_agrees_with_the_server(overlay: str) -> None:
    objects = by_kind(render(overlay))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in HEALTH_PATHS, probe
    config_map = objects["ConfigMap"]
    config = parse_properties(config_map["data"]["config.properties"])
    assert float(config["drain_timeout"]) < pod["terminationGracePeriodSeconds"]
    # The generated ConfigMap's hashed name is the one the pod mounts.
    mounted = [volume["configMap"]["name"] for volume in pod["volumes"] if "configMap" in volume]
    assert mounted == [config_map["metadata"]["name"]]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}
    service_ports = {port["targetPort"] for port in objects["Service"]["spec"]["ports"]}
    assert service_ports <= {port["name"] for port in container["ports"]}


def test_the_hpa_scales_on_metrics_the_adapter_rules_define_from_ours() -> None:
    hpa = by_kind(render("kubernetes/overlays/cpu"))["HorizontalPodAutoscaler"]
    wanted = {metric["pods"]["metric"]["name"] for metric in hpa["spec"]["metrics"]}
    rules_file = DEPLOY / "kubernetes" / "autoscaling" / "prometheus-adapter-rules.yaml"
    rules = yaml.safe_load(rules_file.read_text())["rules"]["custom"]
    defined = {rule["name"]["as"]: rule for rule in rules}
    assert wanted <= set(defined)
    counter = defined["modelserve_inference_requests_per_second"]
    # A counter only grows: the HPA must see its rate.
    assert "rate(" in counter["metricsQuery"]
    metrics_doc = (ROOT / "docs" / "metrics.md").read_text()
    for rule in rules:
        series = rule["seriesQuery"].split("{")[0].strip("'")
        assert f"`{series}`" in metrics_doc, f"{series} is not a metric the server exports"
