"""The customer-instance chart (charts/customer-instance): what the billing worker installs
for each customer, linted and rendered by Helm, validated against Kubernetes."""

import re

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
    render_notes,
    schema_errors,
    secret_value,
)

CUSTOMER_CHART = CHARTS_DIR / "customer-instance"

CUSTOMER_ID = "cust_9f8e7d6c5b4a3210"
CUSTOMER_RELEASE = "c9f8e7d6c"
CUSTOMER_NAMESPACE = "customer-9f8e7d6c"
LICENSE_JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJjdXN0b21lcklkIjoiY3VzdF85ZjhlIn0.c2lnbmF0dXJl"
)


def customer_values(**overrides):
    """Values the billing worker passes for one customer, with top-level overrides."""
    values = {
        "customer": {"id": CUSTOMER_ID},
        "license": {"key": LICENSE_JWT},
        "secrets": {"seed": "0123456789abcdef0123456789abcdef"},
        "baseDomain": "iot.example.net",
    }
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def customer_manifests():
    return render(
        CUSTOMER_CHART, customer_values(), release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE
    )


# ---------------------------------------------------------------- the validator itself
# (chart_helpers.schema_errors, which every chart's tests rely on)


def test_schema_errors_reports_unknown_field_in_strict_mode():
    # given a Service with a misspelt field that a lenient validator would ignore
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "typo"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selectorr": {"app": "x"}},
    }

    # then strict validation catches it, and the corrected manifest passes
    assert schema_errors(service) != []
    service["spec"]["selector"] = service["spec"].pop("selectorr")
    assert schema_errors(service) == []


# ---------------------------------------------------------------- the chart


def test_customer_instance_chart_lints_clean():
    assert lint_problems(CUSTOMER_CHART, customer_values()) == []


# `helm lint` only logs a failed `required`; installing (rendering) is what refuses.
@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"secrets": {"seed": "x" * 32}}, "customer.id is required", id="customer-id"),
        pytest.param(
            {"customer": {"id": CUSTOMER_ID}, "secrets": {"seed": "x" * 32}},
            "license.key is required",
            id="license-key",
        ),
        pytest.param(customer_values(secrets={"seed": ""}), "secrets.seed is required", id="seed"),
        pytest.param(
            customer_values(redis={"password": "short"}),
            "redis password must be at least 12",
            id="weak-password",
        ),
    ],
)
def test_customer_instance_refuses_to_render_without_required_values(values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(CUSTOMER_CHART, values, release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "postgres": {"persistence": {"storageClass": "fast-ssd", "size": "50Gi"}},
                "redis": {"persistence": {"enabled": True}},
                "mosquitto": {
                    "persistence": {"enabled": True},
                    "websockets": {"enabled": True},
                    "service": {
                        "type": "LoadBalancer",
                        "loadBalancerSourceRanges": ["203.0.113.0/24"],
                    },
                },
                "networkPolicy": {"enabled": True},
                "license": {"key": LICENSE_JWT, "publicKey": "-----BEGIN PUBLIC KEY-----\nx\n"},
                "imagePullSecrets": [{"name": "regcred"}],
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "api": {"replicas": 2, "extraEnv": [{"name": "FEATURE_X", "value": "on"}]},
            },
            id="all-features",
        ),
        pytest.param(
            {
                "postgres": {"persistence": {"enabled": False}},
                "billingExporter": {"enabled": False},
                "ingress": {"enabled": False},
            },
            id="minimal",
        ),
    ],
)
def test_customer_instance_manifests_validate_against_kubernetes(overrides):
    manifests = render(
        CUSTOMER_CHART,
        customer_values(**overrides),
        release=CUSTOMER_RELEASE,
        namespace=CUSTOMER_NAMESPACE,
    )

    assert len(manifests) >= 12
    assert [e for m in manifests for e in schema_errors(m)] == []
    assert_references_resolve(manifests)
    assert_services_select_pods(manifests)


@pytest.mark.parametrize(
    ("component", "port"),
    [
        ("api", 3002),
        ("postgres", 5432),
        ("mosquitto", 1883),
        ("dashboard", 80),
        ("redis", 6379),
    ],
)
def test_customer_instance_has_every_component(customer_manifests, component, port):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"

    find(customer_manifests, "Deployment", f"{prefix}-{component}")
    service = find(customer_manifests, "Service", f"{prefix}-{component}")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [port]


@pytest.mark.parametrize(
    ("kind", "component"),
    [
        pytest.param("Deployment", "billing-exporter", id="billing-exporter"),
        pytest.param("Job", "postgres-init", id="postgres-init"),
    ],
)
def test_customer_instance_has_exporter_and_init_job(customer_manifests, kind, component):
    find(customer_manifests, kind, f"{CUSTOMER_RELEASE}-customer-instance-{component}")


def test_customer_instance_labels_match_runbook_selectors(customer_manifests):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"

    def pod_labels(kind, name):
        return find(customer_manifests, kind, name)["spec"]["template"]["metadata"]["labels"]

    # kubectl get pods -l app.kubernetes.io/component=api / =init, -l app=postgres / app=mosquitto
    assert pod_labels("Deployment", f"{prefix}-api")["app.kubernetes.io/component"] == "api"
    api_service = find(customer_manifests, "Service", f"{prefix}-api")
    assert api_service["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    assert pod_labels("Job", f"{prefix}-postgres-init")["app.kubernetes.io/component"] == "init"
    assert pod_labels("Deployment", f"{prefix}-postgres")["app"] == "postgres"
    # kubectl get deployment -l app=postgres
    assert (
        find(customer_manifests, "Deployment", f"{prefix}-postgres")["metadata"]["labels"]["app"]
        == "postgres"
    )
    assert pod_labels("Deployment", f"{prefix}-mosquitto")["app"] == "mosquitto"


# and each of those runbook selectors finds only its own pods
@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("app", "postgres", id="app-postgres"),
        pytest.param("app", "mosquitto", id="app-mosquitto"),
        pytest.param("app.kubernetes.io/component", "api", id="component-api"),
        pytest.param("app.kubernetes.io/component", "init", id="component-init"),
    ],
)
def test_customer_instance_runbook_selector_finds_only_its_own_pods(customer_manifests, key, value):
    pods = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in of_kind(customer_manifests, *WORKLOAD_KINDS, "Job")
    ]
    assert sum(1 for labels in pods if labels.get(key) == value) == 1, (key, value)


def test_customer_instance_resources_carry_standard_labels(customer_manifests):
    assert_standard_labels(
        customer_manifests, chart_name="customer-instance", release=CUSTOMER_RELEASE
    )


def test_customer_instance_init_job_creates_api_user_and_acl_idempotently(customer_manifests):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"
    job = find(customer_manifests, "Job", f"{prefix}-postgres-init")
    script = find(customer_manifests, "ConfigMap", f"{prefix}-postgres-init")["data"]
    sql = " ".join(script["init-mqtt.sql"].split())

    # runs after install and upgrade, from the script ConfigMap
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["scripts"]["configMap"]["name"] == f"{prefix}-postgres-init"
    # waits for Postgres, then for the API's migrations (table mqtt_users)
    assert "pg_isready" in script["init.sh"]
    assert "to_regclass('public.mqtt_users')" in script["init.sh"]
    assert script["init.sh"].index("pg_isready") < script["init.sh"].index("init-mqtt.sql")
    # the admin user: bcrypt hash, superuser, active, never inserted twice
    assert re.search(
        r"INSERT INTO mqtt_users \(username, password_hash, is_superuser, is_active\) "
        r"VALUES \('api_user', crypt\(:'mqtt_password', gen_salt\('bf', 10\)\), TRUE, TRUE\) "
        r"ON CONFLICT \(username\) DO NOTHING;",
        sql,
    ), sql
    # its ACL: every topic, all access, priority 100, only if missing
    assert re.search(
        r"INSERT INTO mqtt_acls \(username, topic, access, priority\) "
        r"SELECT 'api_user', '#', 7, 100 WHERE NOT EXISTS \( SELECT 1 FROM mqtt_acls "
        r"WHERE username = 'api_user' AND topic = '#' \);",
        sql,
    ), sql
    # the password it hashes is the one the API connects with
    init_env = env_of(containers(job)[0])
    api_env = env_of(containers(find(customer_manifests, "Deployment", f"{prefix}-api"))[0])
    assert init_env["MQTT_PASSWORD"]["valueFrom"] == api_env["MQTT_PASSWORD"]["valueFrom"]


def test_customer_instance_api_gets_license_from_secret_and_customer_id(customer_manifests):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"
    api = find(customer_manifests, "Deployment", f"{prefix}-api")
    env = env_of(containers(api)[0])

    ref = env["IOTISTIC_LICENSE_KEY"]["valueFrom"]["secretKeyRef"]
    secret = find(customer_manifests, "Secret", ref["name"])
    assert "value" not in env["IOTISTIC_LICENSE_KEY"]
    assert secret_value(secret, ref["key"]) == LICENSE_JWT
    assert env["CUSTOMER_ID"]["value"] == CUSTOMER_ID
    assert containers(api)[0]["image"].startswith("iotistic/api:")
    assert containers(api)[0]["ports"][0]["containerPort"] == 3002
    assert containers(api)[0]["readinessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize(
    ("overrides", "host"),
    [
        pytest.param({}, "customer-9f8e7d6c.iot.example.net", id="from-customer-id"),
        pytest.param(
            {"customer": {"id": CUSTOMER_ID, "namespaceShort": "a1b2c3d4"}},
            "customer-a1b2c3d4.iot.example.net",
            id="from-namespace-short",
        ),
        pytest.param(
            {
                "customer": {"id": "3F2A9C1E-77d0-4f5e-9c1a-0b1c2d3e4f50"},
                "baseDomain": "iotistic.ca",
            },
            "customer-3f2a9c1e.iotistic.ca",
            id="from-uuid",
        ),
        pytest.param(
            {"ingress": {"host": "devices.acme.example"}},
            "devices.acme.example",
            id="explicit-host",
        ),
    ],
)
def test_customer_instance_ingress_host_is_customer_short_id_under_base_domain(overrides, host):
    manifests = render(
        CUSTOMER_CHART,
        customer_values(**overrides),
        release=CUSTOMER_RELEASE,
        namespace=CUSTOMER_NAMESPACE,
    )

    ingress = find(manifests, "Ingress", f"{CUSTOMER_RELEASE}-customer-instance")
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    backends = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert backends["/api"] == f"{CUSTOMER_RELEASE}-customer-instance-api"
    assert backends["/"] == f"{CUSTOMER_RELEASE}-customer-instance-dashboard"


def test_customer_instance_workloads_have_resources_and_probes(customer_manifests):
    assert_resources_and_probes(customer_manifests, probes_required_for=WORKLOAD_KINDS)


def test_customer_instance_postgres_keeps_data_on_configurable_claim():
    values = customer_values(postgres={"persistence": {"size": "25Gi", "storageClass": "fast-ssd"}})
    manifests = render(
        CUSTOMER_CHART, values, release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE
    )
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"

    claim = find(manifests, "PersistentVolumeClaim", f"{prefix}-postgres")
    postgres = find(manifests, "Deployment", f"{prefix}-postgres")
    volumes = {v["name"]: v for v in postgres["spec"]["template"]["spec"]["volumes"]}
    assert claim["spec"]["resources"]["requests"]["storage"] == "25Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{prefix}-postgres"
    assert postgres["spec"]["strategy"]["type"] == "Recreate"


def test_customer_instance_passwords_are_deterministic_distinct_and_shared():
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"

    def passwords(values):
        manifests = render(
            CUSTOMER_CHART, values, release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE
        )
        secret = find(manifests, "Secret", f"{prefix}-secrets")
        config = secret_value(
            find(manifests, "Secret", f"{prefix}-mosquitto-config"), "mosquitto.conf"
        )
        keys = ("postgres-password", "redis-password", "mqtt-password")
        return {key: secret_value(secret, key) for key in keys}, config

    first, config = passwords(customer_values())
    second, _ = passwords(customer_values())
    explicit, explicit_config = passwords(
        customer_values(postgres={"password": "explicit-postgres-pw"})
    )

    assert first == second
    assert len(set(first.values())) == 3
    assert f"auth_opt_pg_password {first['postgres-password']}\n" in config
    assert explicit["postgres-password"] == "explicit-postgres-pw"
    assert "auth_opt_pg_password explicit-postgres-pw\n" in explicit_config


def test_customer_instance_mosquitto_authenticates_against_postgres(customer_manifests):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"
    config = secret_value(
        find(customer_manifests, "Secret", f"{prefix}-mosquitto-config"), "mosquitto.conf"
    )

    assert "allow_anonymous false" in config
    assert "auth_opt_backends postgres" in config
    assert "auth_opt_hasher bcrypt" in config
    assert f"auth_opt_pg_host {prefix}-postgres\n" in config
    assert "FROM mqtt_users WHERE username = $1 AND is_active = true" in config
    assert "FROM mqtt_acls WHERE username = $1" in config


def test_customer_instance_notes_name_the_host_and_init_job():
    notes = render_notes(
        CUSTOMER_CHART, customer_values(), release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE
    )

    assert "https://customer-9f8e7d6c.iot.example.net/" in notes
    assert f"{CUSTOMER_RELEASE}-customer-instance-postgres-init" in notes
