"""Rendering and checking the Helm charts in charts/, for the test_chart_* modules.

Helm runs in-process through helm-python-sdk (Helm's Go SDK behind a C ABI, no helm binary),
so `lint` and `render` here are what `helm lint` / `helm template` do. Every rendered
manifest is then checked with kubernetes-validate in strict mode (unknown fields are
errors) against the newest Kubernetes schemas it ships. Nothing touches a cluster or the
network.

The `assert_*` helpers and `find` assert; tests/deployments/conftest.py registers this module
for pytest's assertion rewriting, so their failures show the compared values.
"""

import base64
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

CHARTS_DIR = Path(__file__).resolve().parents[2] / "charts"

# Newest Kubernetes minor whose schemas kubernetes-validate 1.37 ships.
KUBERNETES_VERSION = "1.37.0"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
LINT_WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error


def render(chart_dir, values, *, release, namespace):
    """`helm template`: the chart's manifests as dicts (NOTES.txt and empty documents dropped)."""
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    manifests = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def render_notes(chart_dir, values, *, release, namespace):
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return next(text for template, text in rendered.items() if template.endswith("NOTES.txt"))


def lint_problems(chart_dir, values):
    """`helm lint --strict` errors and warnings; info messages ("icon is recommended") pass."""
    report = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["total_charts_linted"] == 1
    problems = [m["error"] for m in report["messages"] if m["severity"] >= LINT_WARNING]
    return problems + list(report["errors"])


def schema_errors(manifest):
    """Strict schema validation of one manifest; returns the problems found, [] if valid."""
    name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return [f"{name}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{name}: {exc.message}"]
    return []


def find(manifests, kind, name):
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(manifests, *kinds):
    return [m for m in manifests if m["kind"] in kinds]


def containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def env_of(container):
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_value(secret, key):
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


def assert_resources_and_probes(manifests, *, probes_required_for):
    missing = []
    for workload in of_kind(manifests, *WORKLOAD_KINDS, "Job"):
        pod_spec = workload["spec"]["template"]["spec"]
        for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
            where = f"{workload['kind']}/{workload['metadata']['name']}:{container['name']}"
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if not resources.get(section, {}).get(resource):
                        missing.append(f"{where} resources.{section}.{resource}")
            if workload["kind"] in probes_required_for and container in pod_spec["containers"]:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        missing.append(f"{where} {probe}")
    assert missing == []


def assert_references_resolve(manifests, *, external_secrets=()):
    """Every Secret, ConfigMap, Service and PVC a manifest points at is rendered too."""
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    wanted = set()
    for workload in of_kind(manifests, *WORKLOAD_KINDS, "Job"):
        pod_spec = workload["spec"]["template"]["spec"]
        for volume in pod_spec.get("volumes", []):
            if "secret" in volume:
                wanted.add(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                wanted.add(("ConfigMap", volume["configMap"]["name"]))
            if "persistentVolumeClaim" in volume:
                wanted.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        for container in pod_spec["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    wanted.add(("Secret", source["secretRef"]["name"]))
                if "configMapRef" in source:
                    wanted.add(("ConfigMap", source["configMapRef"]["name"]))
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    wanted.add(("Secret", ref["name"]))
        if pod_spec.get("serviceAccountName"):
            wanted.add(("ServiceAccount", pod_spec["serviceAccountName"]))
    for ingress in of_kind(manifests, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                wanted.add(("Service", path["backend"]["service"]["name"]))
    wanted -= {("Secret", name) for name in external_secrets}
    assert sorted(wanted - names) == []


def assert_services_select_pods(manifests):
    """Each Service's selector matches the pod labels of exactly one workload."""
    pods = [
        w["spec"]["template"]["metadata"]["labels"] for w in of_kind(manifests, *WORKLOAD_KINDS)
    ]
    for service in of_kind(manifests, "Service"):
        selector = service["spec"]["selector"].items()
        matching = [labels for labels in pods if selector <= labels.items()]
        assert len(matching) == 1, service["metadata"]["name"]


def assert_standard_labels(manifests, *, chart_name, release):
    for manifest in manifests:
        labels = manifest["metadata"].get("labels", {})
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == chart_name, where
        assert labels.get("app.kubernetes.io/instance") == release, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("app.kubernetes.io/version"), where
        assert labels.get("helm.sh/chart", "").startswith(f"{chart_name}-"), where
