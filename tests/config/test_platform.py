"""Health, docs, admin, headers, throttling, and production settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_health_reports_ok_with_version(api_client, settings):
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"] == settings.VERSION


def test_health_names_redis_when_it_is_down(api_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = api_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "Service unavailable"
    assert set(body["details"]) == {"redis"}
    assert body["message"] == "redis is down."


def test_security_headers_are_set(api_client):
    response = api_client.get("/health")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_admin_login_page_is_served(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"username" in response.content


def test_swagger_ui_and_schema_are_served(api_client):
    assert api_client.get("/api/docs/").status_code == 200
    schema = api_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/customers/signup" in paths
    assert "/api/licenses/{customer_id}" in paths
    signup = paths["/api/customers/signup"]["post"]
    assert signup["description"].startswith("**Auth:** Public")
    listing = paths["/api/customers"]["get"]
    assert listing["description"].startswith("**Auth:** Staff only")


def test_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "s.yaml"))
    assert (tmp_path / "s.yaml").read_text().startswith("openapi: 3")


def test_every_api_operation_states_its_auth_rule(api_client):
    paths = api_client.get("/api/schema/?format=json").json()["paths"]
    operations = [op for path in paths.values() for op in path.values()]
    assert operations
    assert all(op.get("description", "").startswith("**Auth:**") for op in operations)


def test_public_endpoint_is_throttled_per_ip_with_retry_after(api_client, settings):
    settings.RATE_LIMIT_VERIFICATION = "3/15m"
    statuses = [api_client.get("/api/licenses/public-key").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api_client.get("/api/licenses/public-key")
    assert response.json()["error"] == "Too many requests"
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    other_ip = api_client.get("/api/licenses/public-key", REMOTE_ADDR="10.9.8.7")
    assert other_ip.status_code == 200
    # a client-sent X-Forwarded-For is not a way around the limit
    spoofed = [
        api_client.get("/api/licenses/public-key", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
        for n in range(3)
    ]
    assert spoofed == [429, 429, 429]


def test_customer_rate_limit_is_per_customer(signup, settings):
    alice, bob = signup(), signup()
    settings.RATE_LIMIT_CUSTOMER = "2/h"
    codes = [alice.client.get(f"/api/licenses/{alice.id}").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert bob.client.get(f"/api/licenses/{bob.id}").status_code == 200


STRONG_SECRET_KEY = "pX7#kq2!vLm9@zR4&wN8*tB3^yH6$cJ1%fD5(gS0)aE-uI+oP=" + "Q" * 10


def _run_django(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "SECRET_KEY"))}
    env.pop("ADMIN_API_TOKEN", None)
    # The project's settings as a server gets them (the test run's own ask for development).
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_to_start_without_secrets(tmp_path):
    result = _run_django(
        {"DEBUG": "false", "LICENSE_PRIVATE_KEY_PATH": str(tmp_path / "none.pem")}, "check"
    )
    assert result.returncode != 0
    # one message naming every missing variable, and how to start a development server instead
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: Production settings")
    assert "too weak: SECRET_KEY; ADMIN_API_TOKEN; LICENSE_PRIVATE_KEY_PATH" in message
    assert message.endswith("start a development server instead with: make run")


def test_production_is_the_default(tmp_path):
    result = _run_django({"LICENSE_PRIVATE_KEY_PATH": str(tmp_path / "none.pem")}, "check")
    assert result.returncode != 0
    assert "Production settings (DEBUG is off unless asked for) are missing or too weak" in (
        result.stderr
    )


def test_production_refuses_to_start_without_license_key(tmp_path):
    result = _run_django(
        {
            "DEBUG": "false",
            "SECRET_KEY": STRONG_SECRET_KEY,
            "ADMIN_API_TOKEN": "t" * 64,
            "LICENSE_PRIVATE_KEY_PATH": str(tmp_path / "none.pem"),
        },
        "check",
    )
    assert result.returncode != 0
    assert "too weak: LICENSE_PRIVATE_KEY_PATH (no license private key at" in result.stderr


def test_production_settings_pass_check_deploy(license_key_paths):
    private, public = license_key_paths
    result = _run_django(
        {
            "DEBUG": "false",
            "SECRET_KEY": STRONG_SECRET_KEY,
            "ADMIN_API_TOKEN": "t" * 64,
            "LICENSE_PRIVATE_KEY_PATH": str(private),
            "LICENSE_PUBLIC_KEY_PATH": str(public),
            "ALLOWED_HOSTS": "billing.example.com",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        pytest.param(
            {"SECRET_KEY": "k" * 60, "ADMIN_API_TOKEN": "t" * 64},
            "SECRET_KEY (too weak",
            id="repetitive-secret-key",
        ),
        pytest.param(
            {"SECRET_KEY": "short-but-varied-!@#", "ADMIN_API_TOKEN": "t" * 64},
            "SECRET_KEY (too weak",
            id="short-secret-key",
        ),
        pytest.param(
            {"SECRET_KEY": "django-insecure-" + STRONG_SECRET_KEY, "ADMIN_API_TOKEN": "t" * 64},
            "SECRET_KEY (too weak",
            id="development-secret-key",
        ),
        pytest.param(
            {"SECRET_KEY": STRONG_SECRET_KEY, "ADMIN_API_TOKEN": "t" * 31},
            "ADMIN_API_TOKEN (too short: at least 32 characters)",
            id="short-admin-token",
        ),
    ],
)
def test_production_refuses_weak_secrets(license_key_paths, variables, named):
    private, public = license_key_paths
    result = _run_django(
        {
            "DEBUG": "false",
            "LICENSE_PRIVATE_KEY_PATH": str(private),
            "LICENSE_PUBLIC_KEY_PATH": str(public),
            **variables,
        },
        "check",
    )
    assert result.returncode != 0
    assert named in result.stderr
