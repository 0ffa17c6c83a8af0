"""The files users run the project with stay consistent with the code."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _settings_variables() -> set[str]:
    source = (ROOT / "config" / "settings.py").read_text()
    reader = r"""(?:env\.\w+|env_bool|_secret)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    return set(re.findall(reader, source))


def test_every_settings_variable_is_documented_in_env_example():
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    variables = _settings_variables()
    assert {"DATABASE_URL", "REDIS_URL", "REDIS_DB", "STRIPE_SECRET_KEY"} <= variables
    assert variables - documented == set()


def test_guide_variables_are_all_read_by_settings():
    guide = {
        "PORT",
        "DATABASE_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
        "REDIS_PASSWORD",
        "QUEUE_CONCURRENCY",
        "QUEUE_MAX_RETRY",
        "QUEUE_BACKOFF_DELAY",
        "STRIPE_SECRET_KEY",
        "STRIPE_PUBLISHABLE_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_PRICE_STARTER",
        "STRIPE_PRICE_PROFESSIONAL",
        "STRIPE_PRICE_ENTERPRISE",
        "LICENSE_PRIVATE_KEY_PATH",
        "LICENSE_PUBLIC_KEY_PATH",
        "DEFAULT_TRIAL_DAYS",
        "BASE_DOMAIN",
        "HELM_CHART_PATH",
        "SIMULATE_K8S_DEPLOYMENT",
        "ADMIN_API_TOKEN",
    }
    assert guide - _settings_variables() == set()


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_every_service_of_the_stack():
    services = _compose()["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "flower", "stripe-cli"} <= set(services)


def test_compose_commands_point_at_real_project_entry_points():
    services = _compose()["services"]
    commands = {
        name: " ".join(svc["command"])
        if isinstance(svc.get("command"), list)
        else svc.get("command", "")
        for name, svc in services.items()
    }
    assert "config.wsgi:application" in commands["web"]
    assert (ROOT / "config" / "wsgi.py").is_file()
    for name in ("worker", "beat"):
        assert "celery -A config" in commands[name], name
    assert (ROOT / "config" / "celery.py").is_file()
    assert "worker" in commands["worker"]
    assert "django_celery_beat.schedulers:DatabaseScheduler" in commands["beat"]
    assert commands["flower"].startswith("python -m config.flower ")
    assert (ROOT / "config" / "flower.py").is_file()
    assert "--url_prefix=admin/queues" in commands["flower"]
    # the login comes from the environment, never the command line (`ps` shows it)
    assert "basic_auth" not in commands["flower"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert "/api/webhooks/stripe" in commands["stripe-cli"]
    assert "web:3100" in commands["stripe-cli"]


def test_compose_app_services_share_one_configuration_and_wait_for_databases():
    services = _compose()["services"]
    for name in ("web", "worker", "beat", "flower"):
        service = services[name]
        assert service.get("build") or service.get("image"), name
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://"), name
        assert env["REDIS_URL"].startswith("redis://redis:6379"), name
        assert env["DEBUG"] == "false", name
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_dockerfile_runs_gunicorn_as_non_root_on_3100():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") >= 2
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "requirements.txt" in dockerfile
    assert "gunicorn" in dockerfile
    assert "3100" in dockerfile
    assert "collectstatic" in dockerfile
    # the image's health check is liveness: a database outage must not restart the container
    assert "/health/live" in dockerfile


def test_make_run_serves_with_the_project_processes():
    serve = (ROOT / "customers" / "management" / "commands" / "serve.py").read_text()
    for needle in (
        "runserver",
        "celery -A config worker",
        "DatabaseScheduler",
        "--url_prefix=admin/queues",
        "-m stripe_simulator",
    ):
        assert needle in serve
    makefile = (ROOT / "Makefile").read_text()
    assert "manage.py serve" in makefile
