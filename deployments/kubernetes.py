"""The one module that touches Helm or the Kubernetes API: one interface, two backends.

- `SimulatedBackend` (SIMULATE_K8S_DEPLOYMENT=true, the default) walks the guide's steps
  in 3-5 seconds. A failure or a crash can be injected per namespace for tests.
- `HelmBackend` creates the namespace and the instance Secret with the official Kubernetes
  client, installs or upgrades the chart with `helm upgrade --install`, waits for the pods
  with the client, and deletes the namespace on offboarding.

Why the `helm` CLI (HELM_BINARY, installed in the image) and not helm-python-sdk in
production: the SDK loads Helm's Go runtime (an 85 MB shared library) into the Celery
worker, and a Go runtime does not survive fork(), which is how the prefork pool makes its
children; a subprocess keeps Helm's memory, panics and hangs out of the worker and is
killed by its timeout. `helm upgrade --install` is also the install-or-upgrade in one step
that a job run twice needs, and the very command an operator replays by hand. The SDK
stays a test tool: it renders the chart in tests/deployments, where no helm binary exists.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

# The kubernetes package takes about 0.3 s to import and only the Helm backend uses it, so
# its imports are deferred into the Helm backend's methods: the simulated backend (development,
# tests, `make run`) and every web process that never deploys do not pay for it.
if TYPE_CHECKING:
    from kubernetes import client as k8s

#: progress(percent, step): called between steps; it may raise to abort the job.
Progress = Callable[[int, str], None]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "iotistic-billing"
CUSTOMER_LABEL = "iotistic.ca/customer-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
#: Secret the billing service writes in each customer namespace.
INSTANCE_SECRET = "billing-instance"  # noqa: S105 - a Secret's name, not a secret


class DeploymentError(Exception):
    """An install or a deletion did not complete; the job records it and may retry."""


@dataclass(frozen=True)
class InstanceSpec:
    """Everything one customer's instance is installed from."""

    customer_id: str
    namespace: str
    license_key: str
    base_domain: str

    @property
    def short_id(self) -> str:
        return self.namespace.removeprefix("customer-")

    @property
    def release(self) -> str:
        """Helm release name, as charts/customer-instance expects: `c<short id>`."""
        return f"c{self.short_id}"

    @property
    def host(self) -> str:
        return f"{self.namespace}.{self.base_domain}"

    def helm_values(self, *, seed: str) -> dict:
        """The values charts/customer-instance needs (see its values.yaml)."""
        return {
            "customer": {"id": self.customer_id, "namespaceShort": self.short_id},
            "license": {"key": self.license_key},
            "secrets": {"seed": seed},
            "baseDomain": self.base_domain,
        }


class Backend(Protocol):
    def deploy(self, spec: InstanceSpec, *, progress: Progress) -> None:
        """Install or upgrade the instance; safe to repeat. Raises DeploymentError."""

    def delete(self, *, namespace: str, progress: Progress) -> None:
        """Remove the instance and its namespace; a missing one counts as removed."""


def get_backend(*, in_process: bool = False) -> Backend:
    """The backend the settings choose.

    `in_process` is true when the job runs inside the request that enqueued it (no broker,
    tasks executed eagerly): the simulation then takes no time, so a signup never waits.
    """
    if settings.SIMULATE_K8S_DEPLOYMENT:
        seconds = settings.SIMULATED_DEPLOY_SECONDS
        if in_process:
            seconds = 0.0
        elif seconds is None:
            seconds = random.uniform(3.0, 5.0)  # noqa: S311 - the guide's 3-5 s, not a secret
        return SimulatedBackend(
            seconds=float(seconds),
            faults=settings.SIMULATED_DEPLOY_FAULTS,
            allow_crash=not in_process,
        )
    return HelmBackend(
        chart_path=Path(settings.HELM_CHART_PATH),
        helm_binary=settings.HELM_BINARY,
        kubeconfig=settings.KUBECONFIG,
        helm_timeout=int(settings.HELM_TIMEOUT_SECONDS),
        ready_timeout=float(settings.DEPLOY_READY_TIMEOUT_SECONDS),
        poll_seconds=float(settings.K8S_POLL_SECONDS),
    )


# ---------------------------------------------------------------- simulated

DEPLOY_STEPS = (
    (10, "Creating namespace"),
    (25, "Storing the license secret"),
    (50, "Installing the Helm release"),
    (80, "Waiting for pods"),
    (100, "Instance ready"),
)
DELETE_STEPS = ((50, "Deleting namespace"), (100, "Namespace deleted"))


class SimulatedBackend:
    """Takes `seconds` over the guide's steps and touches nothing.

    `faults` maps a namespace (or "*" for all) to "error", which raises DeploymentError
    at the install step, or "crash", which kills the process there as the kernel's OOM
    killer would (tests of lost workers); in-process runs turn a crash into an error.
    """

    def __init__(self, *, seconds: float, faults: Mapping[str, str], allow_crash: bool) -> None:
        self.seconds = max(0.0, seconds)
        self.faults = faults
        self.allow_crash = allow_crash

    def deploy(self, spec: InstanceSpec, *, progress: Progress) -> None:
        fault = self.faults.get(spec.namespace) or self.faults.get("*")
        for percent, step in DEPLOY_STEPS:
            time.sleep(self.seconds / len(DEPLOY_STEPS))
            if percent == 50 and fault:
                self._inject(fault, spec)
            progress(percent, f"{step}: {spec.namespace}")

    def delete(self, *, namespace: str, progress: Progress) -> None:
        for percent, step in DELETE_STEPS:
            time.sleep(self.seconds / (2 * len(DELETE_STEPS)))
            progress(percent, f"{step}: {namespace}")

    def _inject(self, fault: str, spec: InstanceSpec) -> None:
        if fault == "crash" and self.allow_crash:
            os.kill(os.getpid(), signal.SIGKILL)
        raise DeploymentError(
            f"Simulated failure installing release {spec.release} in {spec.namespace}."
        )


# ---------------------------------------------------------------- Helm + Kubernetes


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _pod_ready(pod: k8s.V1Pod) -> bool:
    status = pod.status
    if pod.metadata.deletion_timestamp or status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def _not_ready_reasons(pods: list[k8s.V1Pod]) -> str:
    """`name: reason` of each pod that is not ready, e.g. `api-0: ImagePullBackOff`."""
    reasons = []
    for pod in pods:
        if _pod_ready(pod) or (pod.status and pod.status.phase == "Succeeded"):
            continue
        waiting = [
            cs.state.waiting.reason
            for cs in (pod.status.container_statuses or [] if pod.status else [])
            if cs.state and cs.state.waiting and cs.state.waiting.reason
        ]
        phase = pod.status.phase if pod.status else "Unknown"
        reasons.append(f"{pod.metadata.name}: {', '.join(waiting) or phase}")
    return "; ".join(reasons) or "no pods yet"


class HelmBackend:
    """Installs charts/customer-instance into `customer-<short>` as release `c<short>`.

    Steps of `deploy`, each repeatable:
    1. create the namespace, labelled as ours (an existing one is kept);
    2. create or replace the `billing-instance` Secret: IOTISTIC_LICENSE_KEY, CUSTOMER_ID
       and the chart's secrets.seed, generated once and read back on every later run so
       an upgrade never changes the instance's database passwords;
    3. `helm upgrade --install` with those values (a 0600 file, never the command line);
    4. wait until as many pods of the release are ready as its workloads ask for.
    """

    def __init__(
        self,
        *,
        chart_path: Path,
        helm_binary: str,
        kubeconfig: str,
        helm_timeout: int,
        ready_timeout: float,
        poll_seconds: float,
    ) -> None:
        self.chart_path = chart_path
        self.helm_binary = helm_binary
        self.kubeconfig = kubeconfig
        self.helm_timeout = helm_timeout
        self.ready_timeout = ready_timeout
        self.poll_seconds = poll_seconds

    # -- interface

    def deploy(self, spec: InstanceSpec, *, progress: Progress) -> None:
        from kubernetes import client  # deferred: heavy, Helm backend only

        with self._api() as api:
            core = client.CoreV1Api(api)
            progress(10, f"Creating namespace {spec.namespace}")
            with _api_errors("creating the namespace"):
                self._ensure_namespace(core, spec)
            progress(20, "Storing the license secret")
            with _api_errors("storing the instance secret"):
                seed = self._store_instance_secret(core, spec)
            progress(30, f"Installing Helm release {spec.release}")
            self._helm_upgrade_install(spec, seed=seed)
            progress(60, "Waiting for pods")
            with _api_errors("waiting for pods"):
                self._wait_for_pods(api, spec, progress)
        progress(100, f"Instance ready at https://{spec.host}")

    def delete(self, *, namespace: str, progress: Progress) -> None:
        from kubernetes import client  # deferred: heavy, Helm backend only

        with self._api() as api, _api_errors("deleting the namespace"):
            core = client.CoreV1Api(api)
            existing = _read_or_none(lambda: core.read_namespace(namespace))
            if existing is None:
                progress(100, f"Namespace {namespace} already gone")
                return
            if (existing.metadata.labels or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
                raise DeploymentError(
                    f"Namespace {namespace} is not labelled {MANAGED_BY_LABEL}={MANAGED_BY}; "
                    "refusing to delete what the billing service did not create."
                )
            progress(20, f"Deleting namespace {namespace}")
            if _read_or_none(lambda: core.delete_namespace(namespace)) is not None:
                self._wait_until_gone(core, namespace, progress)
        progress(100, f"Namespace {namespace} deleted")

    # -- steps

    @contextmanager
    def _api(self) -> Iterator[k8s.ApiClient]:
        """A client for KUBECONFIG when set, else the pod's service account, else ~/.kube."""
        from kubernetes import client, config  # deferred: heavy, Helm backend only

        configuration = client.Configuration()
        try:
            if self.kubeconfig:
                config.load_kube_config(
                    config_file=self.kubeconfig, client_configuration=configuration
                )
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except config.ConfigException:
                    config.load_kube_config(client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            raise DeploymentError(f"No Kubernetes configuration: {exc}") from exc
        with client.ApiClient(configuration) as api:
            yield api

    def _ensure_namespace(self, core: k8s.CoreV1Api, spec: InstanceSpec) -> None:
        from kubernetes import client  # deferred: heavy, Helm backend only

        labels = {MANAGED_BY_LABEL: MANAGED_BY, CUSTOMER_LABEL: spec.customer_id}
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=spec.namespace, labels=labels))
        try:
            core.create_namespace(body)
        except client.ApiException as exc:
            if exc.status != 409:  # 409: it exists (an earlier run, or an upgrade)
                raise

    def _store_instance_secret(self, core: k8s.CoreV1Api, spec: InstanceSpec) -> str:
        """Create or replace the Secret; return the seed it keeps."""
        from kubernetes import client  # deferred: heavy, Helm backend only

        for _ in range(2):
            existing = _read_or_none(
                lambda: core.read_namespaced_secret(INSTANCE_SECRET, spec.namespace)
            )
            stored = (existing.data or {}).get("SECRETS_SEED") if existing else None
            seed = base64.b64decode(stored).decode() if stored else secrets.token_hex(32)
            body = client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=INSTANCE_SECRET,
                    labels={MANAGED_BY_LABEL: MANAGED_BY, CUSTOMER_LABEL: spec.customer_id},
                ),
                type="Opaque",
                data={
                    "IOTISTIC_LICENSE_KEY": _b64(spec.license_key),
                    "CUSTOMER_ID": _b64(spec.customer_id),
                    "SECRETS_SEED": _b64(seed),
                },
            )
            if existing is not None:
                core.replace_namespaced_secret(INSTANCE_SECRET, spec.namespace, body)
                return seed
            try:
                core.create_namespaced_secret(spec.namespace, body)
            except client.ApiException as exc:
                if exc.status == 409:  # created meanwhile by another run: read its seed
                    continue
                raise
            return seed
        raise DeploymentError(f"Secret {INSTANCE_SECRET} in {spec.namespace} keeps changing.")

    def _helm_upgrade_install(self, spec: InstanceSpec, *, seed: str) -> None:
        with tempfile.TemporaryDirectory(prefix="helm-values-") as directory:
            values = Path(directory) / "values.json"  # JSON is YAML; no PyYAML at runtime
            values.write_text(json.dumps(spec.helm_values(seed=seed)))
            values.chmod(0o600)
            argv = [
                self.helm_binary,
                "upgrade",
                "--install",
                spec.release,
                str(self.chart_path),
                "--namespace",
                spec.namespace,
                "--values",
                str(values),
                "--timeout",
                f"{self.helm_timeout}s",
                "--history-max",
                "10",
            ]
            if self.kubeconfig:
                argv += ["--kubeconfig", self.kubeconfig]
            try:
                # argv is built from our own settings and ids; no shell is involved.
                result = subprocess.run(  # noqa: S603
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=self.helm_timeout + 30,
                    check=False,
                )
            except FileNotFoundError as exc:
                raise DeploymentError(
                    f"helm not found ({self.helm_binary}): install it in the image or set "
                    "HELM_BINARY."
                ) from exc
            except subprocess.TimeoutExpired as exc:
                raise DeploymentError(
                    f"helm upgrade --install {spec.release} did not finish in "
                    f"{self.helm_timeout + 30}s."
                ) from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-1500:]
            raise DeploymentError(
                f"helm upgrade --install {spec.release} failed (exit {result.returncode}): {detail}"
            )

    def _wait_for_pods(self, api: k8s.ApiClient, spec: InstanceSpec, progress: Progress) -> None:
        from kubernetes import client  # deferred: heavy, Helm backend only

        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        selector = f"{INSTANCE_LABEL}={spec.release}"
        deadline = time.monotonic() + self.ready_timeout
        while True:
            workloads = [
                *apps.list_namespaced_deployment(spec.namespace, label_selector=selector).items,
                *apps.list_namespaced_stateful_set(spec.namespace, label_selector=selector).items,
            ]
            expected = sum(1 if w.spec.replicas is None else w.spec.replicas for w in workloads)
            pods = core.list_namespaced_pod(spec.namespace, label_selector=selector).items
            ready = sum(1 for pod in pods if _pod_ready(pod))
            if expected and ready >= expected:
                return
            done = min(ready, expected) / expected if expected else 0
            progress(60 + int(35 * done), f"{ready}/{expected} pods ready")
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    f"{ready}/{expected} pods of {spec.release} ready after "
                    f"{self.ready_timeout:g}s: {_not_ready_reasons(pods)}"
                )
            time.sleep(self.poll_seconds)

    def _wait_until_gone(self, core: k8s.CoreV1Api, namespace: str, progress: Progress) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while _read_or_none(lambda: core.read_namespace(namespace)) is not None:
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    f"Namespace {namespace} still terminating after {self.ready_timeout:g}s."
                )
            progress(60, f"Waiting for namespace {namespace} to terminate")
            time.sleep(self.poll_seconds)


def _read_or_none(call):
    """The call's answer, or None when the API answers 404."""
    from kubernetes import client  # deferred: heavy, Helm backend only

    try:
        return call()
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


@contextmanager
def _api_errors(doing: str) -> Iterator[None]:
    """Turn the client's errors into DeploymentError with a sentence a person can act on."""
    from kubernetes import client  # deferred: heavy, Helm backend only
    from urllib3.exceptions import HTTPError  # deferred with the kubernetes client

    try:
        yield
    except client.ApiException as exc:
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise DeploymentError(
            f"Kubernetes API answered {exc.status} while {doing}: {message}"
        ) from exc
    except (HTTPError, OSError) as exc:
        raise DeploymentError(f"Kubernetes API unreachable while {doing}: {exc}") from exc
