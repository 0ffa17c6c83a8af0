"""The Helm charts in charts/: linted and rendered by Helm itself, validated against Kubernetes.

Helm runs in-process through helm-python-sdk (Helm's Go SDK behind a C ABI, no helm binary),
so `lint` and `render` here are what `helm lint` / `helm template` do. Every rendered
manifest is then checked with kubernetes-validate in strict mode (unknown fields are
errors) against the newest Kubernetes schemas it ships. Nothing touches a cluster or the
network.
"""

import base64
import re
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHARTS_DIR = Path(__file__).resolve().parents[2] / "charts"
CUSTOMER_CHART = CHARTS_DIR / "customer-instance"
BILLING_CHART = CHARTS_DIR / "billing"

# Newest Kubernetes minor whose schemas kubernetes-validate 1.37 ships.
KUBERNETES_VERSION = "1.37.0"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
LINT_WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error

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


# ---------------------------------------------------------------- helpers


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


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def customer_manifests():
    return render(
        CUSTOMER_CHART, customer_values(), release=CUSTOMER_RELEASE, namespace=CUSTOMER_NAMESPACE
    )


@pytest.fixture(scope="module")
def billing_manifests():
    return render(BILLING_CHART, billing_values(), release="billing", namespace="billing")


# ---------------------------------------------------------------- the validator itself


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


# ---------------------------------------------------------------- customer-instance


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


def test_customer_instance_has_every_component(customer_manifests):
    prefix = f"{CUSTOMER_RELEASE}-customer-instance"
    ports = {"api": 3002, "postgres": 5432, "mosquitto": 1883, "dashboard": 80, "redis": 6379}

    for component, port in ports.items():
        find(customer_manifests, "Deployment", f"{prefix}-{component}")
        service = find(customer_manifests, "Service", f"{prefix}-{component}")
        assert service["spec"]["type"] == "ClusterIP"
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
    find(customer_manifests, "Deployment", f"{prefix}-billing-exporter")
    find(customer_manifests, "Job", f"{prefix}-postgres-init")


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
    # and each selector finds only its own pods
    pods = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in of_kind(customer_manifests, *WORKLOAD_KINDS, "Job")
    ]
    for key, value in [
        ("app", "postgres"),
        ("app", "mosquitto"),
        ("app.kubernetes.io/component", "api"),
        ("app.kubernetes.io/component", "init"),
    ]:
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


# ---------------------------------------------------------------- billing


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
            "celery",
            "-A",
            "config",
            "flower",
            "--port=5555",
            "--url_prefix=admin/queues",
            "--basic_auth=$(FLOWER_BASIC_AUTH)",
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
    # the configuration it reads is created by earlier hooks
    for kind, name in [
        ("ConfigMap", "billing-config"),
        ("Secret", "billing-env"),
        ("Secret", "billing-license-keys"),
    ]:
        hooked = find(billing_manifests, kind, name)["metadata"]["annotations"]
        assert "pre-install" in hooked["helm.sh/hook"].split(",")
        assert int(hooked["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert "readinessProbe" not in containers(job)[0]


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
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "ADMIN_API_TOKEN",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    ):
        assert secret_value(secret, key), key
    assert secret_value(secret, "DATABASE_URL").startswith("postgres://")
    for workload in of_kind(billing_manifests, "Deployment", "Job"):
        sources = containers(workload)[0]["envFrom"]
        assert {"configMapRef": {"name": "billing-config"}} in sources
        assert {"secretRef": {"name": "billing-env"}} in sources


def test_billing_worker_may_manage_customer_namespaces(billing_manifests):
    role = find(billing_manifests, "ClusterRole", "billing-customer-deployer")
    binding = find(billing_manifests, "ClusterRoleBinding", "billing-customer-deployer")
    worker = find(billing_manifests, "Deployment", "billing-worker")["spec"]["template"]["spec"]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }

    manage = {"get", "list", "create", "update", "patch", "delete"}
    for key in [
        ("", "namespaces"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("networking.k8s.io", "ingresses"),
    ]:
        assert manage <= granted.get(key, set()), key
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": worker["serviceAccountName"], "namespace": "billing"}
    ]
    assert worker["automountServiceAccountToken"] is True
    web = find(billing_manifests, "Deployment", "billing-web")["spec"]["template"]["spec"]
    assert web["automountServiceAccountToken"] is False


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
    assert web["readinessProbe"]["httpGet"]["path"] == "/health"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    assert service["spec"]["ports"][0]["port"] == 3100
    assert ingress["spec"]["rules"][0]["host"] == "billing.example.net"
    assert paths["/"] == {"name": "billing-web", "port": {"name": "http"}}
    assert paths["/admin/queues"]["name"] == "billing-flower"


def test_billing_resources_carry_standard_labels(billing_manifests):
    assert_standard_labels(billing_manifests, chart_name="billing", release="billing")
