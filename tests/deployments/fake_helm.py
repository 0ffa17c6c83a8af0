"""Stand-in for the `helm` binary in tests (HELM_BINARY points at a wrapper of this file).

No helm binary exists in the package registries our machines reach. This answers
`helm upgrade --install RELEASE CHART --namespace NS --values FILE ... --kubeconfig PATH`
the way Helm would against a cluster, using Helm's own template engine:
1. append the arguments and the values file to $FAKE_HELM_LOG (one JSON line per call);
2. render CHART with helm-python-sdk (Helm's Go SDK) for RELEASE in NS with those values;
3. create each manifest in the cluster of the kubeconfig, or patch it if it exists
   (an upgrade), through the official Kubernetes client;
4. act as the kubelet: one pod per replica of every Deployment and StatefulSet, Ready,
   or stuck in ImagePullBackOff when $FAKE_HELM_PODS=not-ready.
$FAKE_HELM_FAIL makes it print that text and exit 1, as a failing upgrade does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import helm_python as helm
import yaml
from kubernetes import client, config


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="helm")
    parser.add_argument("command", choices=["upgrade"])
    parser.add_argument("release")
    parser.add_argument("chart")
    parser.add_argument("--install", action="store_true", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--values", required=True)
    parser.add_argument("--timeout", required=True)
    parser.add_argument("--history-max", type=int, required=True)
    parser.add_argument("--kubeconfig", required=True)
    return parser.parse_args(argv)


def api_for(api_client: client.ApiClient, api_version: str):
    """`apps/v1` -> AppsV1Api, `v1` -> CoreV1Api, `networking.k8s.io/v1` -> NetworkingV1Api."""
    group, _, version = api_version.rpartition("/")
    group = group.split(".")[0] if group else "core"
    return getattr(client, f"{group.capitalize()}{version.capitalize()}Api")(api_client)


def snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def apply(api_client: client.ApiClient, manifest: dict, namespace: str) -> None:
    api = api_for(api_client, manifest["apiVersion"])
    kind = snake(manifest["kind"])
    try:
        getattr(api, f"create_namespaced_{kind}")(namespace, manifest)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        name = manifest["metadata"]["name"]
        getattr(api, f"patch_namespaced_{kind}")(name, namespace, manifest)


def run_pods(api_client: client.ApiClient, workload: dict, namespace: str, ready: bool) -> None:
    core = client.CoreV1Api(api_client)
    template = workload["spec"]["template"]
    for index in range(workload["spec"].get("replicas", 1)):
        name = f"{workload['metadata']['name']}-{index}"
        state = {"running": {}} if ready else {"waiting": {"reason": "ImagePullBackOff"}}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
            "status": {
                "phase": "Running" if ready else "Pending",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "ready": ready,
                        "restartCount": 0,
                        "state": state,
                    }
                    for c in template["spec"]["containers"]
                ],
            },
        }
        try:
            core.create_namespaced_pod(namespace, pod)
        except client.ApiException as exc:
            if exc.status != 409:
                raise


def main(argv: list[str]) -> int:
    args = parse(argv)
    with open(args.values) as handle:
        values = json.load(handle)
    with open(os.environ["FAKE_HELM_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "values": values}) + "\n")
    if failure := os.environ.get("FAKE_HELM_FAIL"):
        print(f"Error: UPGRADE FAILED: {failure}", file=sys.stderr)
        return 1
    with helm.Chart.load(args.chart) as chart:
        rendered = chart.render(
            values, name=args.release, namespace=args.namespace, is_install=True
        )
    manifests = [
        doc
        for name, text in sorted(rendered.items())
        if name.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    ready = os.environ.get("FAKE_HELM_PODS", "ready") == "ready"
    with config.new_client_from_config(config_file=args.kubeconfig) as api:
        for manifest in manifests:
            apply(api, manifest, args.namespace)
        for manifest in manifests:
            if manifest["kind"] in ("Deployment", "StatefulSet"):
                run_pods(api, manifest, args.namespace, ready)
    print(f'Release "{args.release}" has been upgraded. Happy Helming!')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
