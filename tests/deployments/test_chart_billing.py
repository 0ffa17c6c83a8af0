"""The billing chart (charts/billing): this service's own web, worker, beat and flower,
linted and rendered by Helm, validated against Kubernetes."""

import helm_python as helm
import pytest

from tests.deployments.chart_helpers import (
    CHARTS_DIR,
    WORKLOAD_KINDS,
    assert_references_resolve,
    assert_resources_and_probes,
    assert_services_select_pods,
    assert_standard_labels,
    containers,
    env_of,
    find,
    lint_problems,
    of_kind,
    render,
    schema_errors,
    secret_value,
)

BILLING_CHART = CHARTS_DIR / "billing"


def billing_values(**overrides):
    values = {
        "secrets": {
            "databaseUrl": "postgres://billing:pw@postgres.billing.svc:5432/billing",
            "redisUrl": "redis://:pw@redis.billing.svc:6379/0",
            "secretKey": "s" * 50,
            "adminApiToken": "a" * 40,
            "stripeSecretKey": "sk_live_example",
            "stripeWebhookSecret": "whsec_example",
            "flowerBasicAuth": "ops:flower-password",
        },
        "licenseKeys": {
            "privateKey": "-----BEGIN PRIVATE KEY-----\nMIIEexample\n-----END PRIVATE KEY-----\n",
            "publicKey": "-----BEGIN PUBLIC KEY-----\nMIIBexample\n-----END PUBLIC KEY-----\n",
        },
        "ingress": {"host": "billing.example.net"},
    }
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def billing_manifests():
    return render(BILLING_CHART, billing_values(), release="billing", namespace="billing")


# ---------------------------------------------------------------- the chart


def test_billing_chart_lints_clean():
    assert lint_problems(BILLING_CHART, billing_values()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"secrets": {}}, "secrets.databaseUrl is required", id="secrets"),
        pytest.param({"licenseKeys": {}}, "licenseKeys.privateKey is required", id="license-keys"),
        pytest.param({"ingress": {"host": ""}}, "ingress.host is required", id="ingress-host"),
    ],
)
def test_billing_refuses_to_render_without_required_values(overrides, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(BILLING_CHART, billing_values(**overrides), release="billing", namespace="billing")


@pytest.mark.parametrize(
    ("overrides", "external_secrets"),
    [
        pytest.param({}, (), id="defaults"),
        pytest.param(
            {
                "secrets": {"existingSecret": "billing-env-managed"},
                "licenseKeys": {"existingSecret": "billing-license-managed"},
            },
            ("billing-env-managed", "billing-license-managed"),
            id="existing-secrets",
        ),
        pytest.param(
            {
                "flower": {"enabled": False},
                "ingress": {"enabled": False},
                "rbac": {"create": False},
                "web": {"replicas": 1},
                "config": {
                    "extra": {"STRIPE_PRICE_STARTER": "price_123"},
                    "allowedHosts": ["billing.internal"],
                },
                "extraEnv": [{"name": "EMAIL_HOST", "value": "smtp.example.net"}],
            },
            (),
            id="minimal",
        ),
    ],
)
def test_billing_manifests_validate_against_kubernetes(overrides, external_secrets):
    manifests = render(
        BILLING_CHART, billing_values(**overrides), release="billing", namespace="billing"
    )

    assert len(manifests) >= 8
    assert [e for m in manifests for e in schema_errors(m)] == []
    assert_references_resolve(manifests, external_secrets=external_secrets)
    assert_services_select_pods(manifests)


def test_billing_runs_web_worker_beat_and_flower(billing_manifests):
    commands = {
        d["metadata"]["name"]: containers(d)[0]["command"]
        for d in of_kind(billing_manifests, "Deployment")
    }

    assert commands == {
        "billing-web": ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:3100"],
        "billing-worker": ["celery", "-A", "config", "worker", "-l", "info"],
        "billing-beat": [
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "info",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
        ],
        "billing-flower": [
            "python",
            "-m",
            "config.flower",
            "--port=5555",
            "--url_prefix=admin/queues",
        ],
    }
    flower_env = env_of(containers(find(billing_manifests, "Deployment", "billing-flower"))[0])
    assert (
        flower_env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]["key"] == "FLOWER_BASIC_AUTH"
    )


def test_billing_beat_is_a_single_recreated_replica(billing_manifests):
    beat = find(billing_manifests, "Deployment", "billing-beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_billing_migrations_run_as_pre_install_and_pre_upgrade_hook(billing_manifests):
    job = find(billing_manifests, "Job", "billing-migrate")
    annotations = job["metadata"]["annotations"]

    assert containers(job)[0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "readinessProbe" not in containers(job)[0]


# the configuration the migrations read is created by earlier hooks
@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("ConfigMap", "billing-config"),
        ("Secret", "billing-env"),
        ("Secret", "billing-license-keys"),
    ],
)
def test_billing_migration_config_is_created_by_an_earlier_hook(billing_manifests, kind, name):
    annotations = find(billing_manifests, "Job", "billing-migrate")["metadata"]["annotations"]

    hooked = find(billing_manifests, kind, name)["metadata"]["annotations"]
    assert "pre-install" in hooked["helm.sh/hook"].split(",")
    assert int(hooked["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


def test_billing_license_keys_are_mounted_from_secret(billing_manifests):
    keys = find(billing_manifests, "Secret", "billing-license-keys")
    assert set(keys["stringData"]) == {"private-key.pem", "public-key.pem"}
    assert "BEGIN PRIVATE KEY" in secret_value(keys, "private-key.pem")

    for workload in of_kind(billing_manifests, "Deployment", "Job"):
        pod_spec = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        container = pod_spec["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/keys")
        env = env_of(container)
        assert volumes[mount["name"]]["secret"]["secretName"] == "billing-license-keys"
        assert mount["readOnly"] is True
        assert env["LICENSE_PRIVATE_KEY_PATH"]["value"] == "/app/keys/private-key.pem"
        assert env["LICENSE_PUBLIC_KEY_PATH"]["value"] == "/app/keys/public-key.pem"


def test_billing_settings_come_from_configmap_and_secret(billing_manifests):
    config = find(billing_manifests, "ConfigMap", "billing-config")["data"]
    secret = find(billing_manifests, "Secret", "billing-env")

    assert config["DEBUG"] == "false"
    assert "billing.example.net" in config["ALLOWED_HOSTS"].split(",")
    assert "billing-web" in config["ALLOWED_HOSTS"].split(",")
    assert config["BASE_DOMAIN"] == "iotistic.ca"
    assert config["SIMULATE_K8S_DEPLOYMENT"] == "false"
    assert config["HELM_CHART_PATH"] == "/app/charts/customer-instance"
    assert secret_value(secret, "DATABASE_URL").startswith("postgres://")
    for workload in of_kind(billing_manifests, "Deployment", "Job"):
        sources = containers(workload)[0]["envFrom"]
        assert {"configMapRef": {"name": "billing-config"}} in sources
        assert {"secretRef": {"name": "billing-env"}} in sources


@pytest.mark.parametrize(
    "key",
    [
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "ADMIN_API_TOKEN",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    ],
)
def test_billing_env_secret_carries_setting(billing_manifests, key):
    secret = find(billing_manifests, "Secret", "billing-env")

    assert secret_value(secret, key), key


def test_billing_worker_may_manage_customer_namespaces(billing_manifests):
    role = find(billing_manifests, "ClusterRole", "billing-customer-deployer")
    binding = find(billing_manifests, "ClusterRoleBinding", "billing-customer-deployer")
    worker = find(billing_manifests, "Deployment", "billing-worker")["spec"]["template"]["spec"]

    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": worker["serviceAccountName"], "namespace": "billing"}
    ]
    assert worker["automountServiceAccountToken"] is True
    web = find(billing_manifests, "Deployment", "billing-web")["spec"]["template"]["spec"]
    assert web["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(("", "namespaces"), id="namespaces"),
        pytest.param(("", "secrets"), id="secrets"),
        pytest.param(("", "configmaps"), id="configmaps"),
        pytest.param(("", "services"), id="services"),
        pytest.param(("", "persistentvolumeclaims"), id="persistentvolumeclaims"),
        pytest.param(("apps", "deployments"), id="apps-deployments"),
        pytest.param(("batch", "jobs"), id="batch-jobs"),
        pytest.param(("networking.k8s.io", "ingresses"), id="networking-ingresses"),
    ],
)
def test_billing_worker_may_manage_customer_resource(billing_manifests, key):
    role = find(billing_manifests, "ClusterRole", "billing-customer-deployer")
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }

    manage = {"get", "list", "create", "update", "patch", "delete"}
    assert manage <= granted.get(key, set()), key


def test_billing_workloads_have_resources_probes_and_run_as_non_root(billing_manifests):
    assert_resources_and_probes(billing_manifests, probes_required_for=WORKLOAD_KINDS)

    for workload in of_kind(billing_manifests, "Deployment", "Job"):
        pod_spec = workload["spec"]["template"]["spec"]
        assert pod_spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert containers(workload)[0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_billing_web_is_served_on_3100_behind_ingress(billing_manifests):
    web = containers(find(billing_manifests, "Deployment", "billing-web"))[0]
    service = find(billing_manifests, "Service", "billing-web")
    ingress = find(billing_manifests, "Ingress", "billing")
    paths = {
        p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }

    assert web["ports"] == [{"name": "http", "containerPort": 3100, "protocol": "TCP"}]
    assert web["startupProbe"]["httpGet"]["path"] == "/health/ready"
    assert web["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health/live"
    worker = containers(find(billing_manifests, "Deployment", "billing-worker"))[0]
    assert worker["livenessProbe"]["exec"]["command"] == ["python", "manage.py", "worker_health"]
    assert service["spec"]["ports"][0]["port"] == 3100
    assert ingress["spec"]["rules"][0]["host"] == "billing.example.net"
    assert paths["/"] == {"name": "billing-web", "port": {"name": "http"}}
    assert paths["/admin/queues"]["name"] == "billing-flower"


def test_billing_resources_carry_standard_labels(billing_manifests):
    assert_standard_labels(billing_manifests, chart_name="billing", release="billing")
