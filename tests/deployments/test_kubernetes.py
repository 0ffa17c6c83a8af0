"""The real backend (HelmBackend) over HTTP against kmock's Kubernetes emulator.

The Kubernetes client calls are the real ones; `helm` is tests/deployments/fake_helm.py,
which renders the chart with Helm's own engine and creates what it renders in the emulator.
"""

import base64

import jwt
import pytest
from kubernetes import client, config

from deployments import kubernetes, services
from deployments.models import Deployment
from subscriptions.services import subscription_set_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def core(cluster):
    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def deployed(signup, django_capture_on_commit_callbacks, cluster):
    def _deployed(**overrides) -> Deployment:
        with django_capture_on_commit_callbacks(execute=True):
            customer = signup(**overrides)
        return Deployment.objects.select_related("customer").get(customer__customer_id=customer.id)

    return _deployed


def _secret(core, namespace: str, name: str) -> dict[str, str]:
    data = core.read_namespaced_secret(name, namespace).data
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_real_backend_installs_the_instance_into_the_cluster(deployed, cluster, core, settings):
    # when a customer signs up
    deployment = deployed()

    # then the job went through the real backend to the end
    customer_id = deployment.customer.customer_id
    short = customer_id.removeprefix("cust_")[:8]
    namespace, release = f"customer-{short}", f"c{short}"
    assert (deployment.status, deployment.namespace) == ("deployed", namespace)

    # the namespace, labelled as ours
    labels = core.read_namespace(namespace).metadata.labels
    assert labels == {
        "app.kubernetes.io/managed-by": "iotistic-billing",
        "iotistic.ca/customer-id": customer_id,
    }

    # the license in a Secret, with the customer id and the chart's password seed
    secret = _secret(core, namespace, "billing-instance")
    assert _claims(secret["IOTISTIC_LICENSE_KEY"])["customerId"] == customer_id
    assert secret["CUSTOMER_ID"] == customer_id
    assert len(secret["SECRETS_SEED"]) == 64

    # helm upgrade --install of the chart, as release c<short> in the namespace
    [call] = cluster.helm_calls()
    assert call["argv"][:4] == ["upgrade", "--install", release, settings.HELM_CHART_PATH]
    assert call["argv"][call["argv"].index("--namespace") + 1] == namespace
    assert call["argv"][call["argv"].index("--kubeconfig") + 1] == settings.KUBECONFIG
    assert call["values"] == {
        "customer": {"id": customer_id, "namespaceShort": short},
        "license": {"key": secret["IOTISTIC_LICENSE_KEY"]},
        "secrets": {"seed": secret["SECRETS_SEED"]},
        "baseDomain": settings.BASE_DOMAIN,
    }

    # what the chart made of those values: ingress host, CUSTOMER_ID and license in the API
    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        ingress = client.NetworkingV1Api(api).read_namespaced_ingress(
            f"{release}-customer-instance", namespace
        )
        api_deployment = client.AppsV1Api(api).read_namespaced_deployment(
            f"{release}-customer-instance-api", namespace
        )
    assert ingress.spec.rules[0].host == f"customer-{short}.{settings.BASE_DOMAIN}"
    env = {e.name: e for e in api_deployment.spec.template.spec.containers[0].env}
    assert env["CUSTOMER_ID"].value == customer_id
    assert env["IOTISTIC_LICENSE_KEY"].value_from.secret_key_ref.key == "license-key"

    # and every call was HTTP to the emulator
    assert ("POST", "/api/v1/namespaces") in cluster.requests
    assert ("POST", f"/api/v1/namespaces/{namespace}/secrets") in cluster.requests
    assert ("GET", f"/api/v1/namespaces/{namespace}/pods") in cluster.requests
    assert [e for e in cluster.errors if getattr(e, "status", 500) != 404] == []


def test_redeploy_after_a_plan_change_installs_the_new_license_and_keeps_the_seed(
    deployed, cluster, core, django_capture_on_commit_callbacks
):
    # given a deployed instance on the trial
    deployment = deployed()
    before = _secret(core, deployment.namespace, "billing-instance")
    assert _claims(before["IOTISTIC_LICENSE_KEY"])["plan"] == "trial"

    # when the plan changes and the instance is redeployed
    subscription_set_plan(customer=deployment.customer, plan="professional")
    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_redeploy(customer=deployment.customer)

    # then helm upgraded it with the new license, and the passwords' seed did not change
    deployment.refresh_from_db()
    assert deployment.status == "deployed"
    after = _secret(core, deployment.namespace, "billing-instance")
    assert _claims(after["IOTISTIC_LICENSE_KEY"])["plan"] == "professional"
    assert after["SECRETS_SEED"] == before["SECRETS_SEED"]
    first, second = cluster.helm_calls()
    assert second["values"]["license"]["key"] == after["IOTISTIC_LICENSE_KEY"]
    assert second["values"]["secrets"] == first["values"]["secrets"]


@pytest.mark.parametrize(
    ("environment", "errors"),
    [
        ({"FAKE_HELM_PODS": "not-ready"}, ["0/6 pods of c", "-api-0: ImagePullBackOff"]),
        ({"FAKE_HELM_FAIL": "timed out waiting for the condition"}, ["failed (exit 1)"]),
    ],
)
def test_real_backend_failures_end_failed_with_a_readable_error(
    deployed, monkeypatch, settings, environment, errors
):
    settings.QUEUE_MAX_RETRY = 1
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    deployment = deployed()

    assert (deployment.status, deployment.attempts) == ("failed", 1)
    for error in errors:
        assert error in deployment.last_error


def test_missing_helm_binary_is_a_deployment_error(deployed, settings, tmp_path):
    settings.HELM_BINARY = str(tmp_path / "no-such-helm")
    settings.QUEUE_MAX_RETRY = 1

    deployment = deployed()

    assert deployment.status == "failed"
    assert deployment.last_error.startswith("helm not found")


def test_delete_removes_the_namespace(deployed, core, django_capture_on_commit_callbacks):
    deployment = deployed()

    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_schedule_delete(customer=deployment.customer)

    deployment.refresh_from_db()
    assert deployment.status == "deleted"
    with pytest.raises(client.ApiException) as gone:
        core.read_namespace(deployment.namespace)
    assert gone.value.status == 404
    # deleting a namespace that is already gone is done, not an error
    services.deployment_delete_now(namespace=deployment.namespace)


def test_delete_refuses_a_namespace_the_billing_service_did_not_create(cluster, core):
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="customer-k8s0wned"))
    )

    with pytest.raises(kubernetes.DeploymentError, match="refusing to delete"):
        services.deployment_delete_now(namespace="customer-k8s0wned")

    assert core.read_namespace("customer-k8s0wned").metadata.name == "customer-k8s0wned"


def test_unreachable_cluster_is_a_deployment_error(deployed, settings, tmp_path):
    from tests.deployments.support import free_port

    kubeconfig = tmp_path / "nowhere.yaml"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: x, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    settings.KUBECONFIG = str(kubeconfig)
    settings.QUEUE_MAX_RETRY = 1

    deployment = deployed()

    assert deployment.status == "failed"
    assert deployment.last_error.startswith(
        "Kubernetes API unreachable while creating the namespace"
    )
