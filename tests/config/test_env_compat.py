"""Settings carried over from the guide's `.env`: REDIS_PASSWORD, REDIS_TLS_ENABLED, NODE_ENV."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from config.settings import redis_url_from_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def guide_redis_env(monkeypatch):
    for name in ("REDIS_URL", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_TLS_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_HOST", "redis.example.com")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_DB", "2")
    return monkeypatch


@pytest.mark.parametrize("password", ["p@ss/word#1", "a:b@c", "plain", "100%sure?"])
def test_redis_password_with_url_characters_survives_into_the_url(guide_redis_env, password):
    guide_redis_env.setenv("REDIS_PASSWORD", password)
    url = redis_url_from_env()

    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("redis.example.com", 6380, "/2")
    # what redis-py (cache and Celery broker) will send as the password
    pool = redis.ConnectionPool.from_url(url)
    assert pool.connection_kwargs["password"] == password
    assert pool.connection_kwargs["host"] == "redis.example.com"
    assert pool.connection_kwargs["db"] == 2


def test_redis_tls_enabled_switches_to_rediss(guide_redis_env):
    guide_redis_env.setenv("REDIS_TLS_ENABLED", "true")
    url = redis_url_from_env()
    assert url == "rediss://redis.example.com:6380/2"
    assert redis.ConnectionPool.from_url(url).connection_class is redis.SSLConnection


def test_redis_tls_enabled_also_applies_to_a_given_redis_url(guide_redis_env):
    guide_redis_env.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    guide_redis_env.setenv("REDIS_TLS_ENABLED", "true")
    assert redis_url_from_env() == "rediss://cache.internal:6379/0"


def test_redis_tls_disabled_keeps_plain_redis(guide_redis_env):
    guide_redis_env.setenv("REDIS_TLS_ENABLED", "false")
    assert redis_url_from_env() == "redis://redis.example.com:6380/2"


def _settings_value(variables: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "NODE_ENV")}
    env.update(variables)
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_node_env_production_turns_debug_off(tmp_path):
    # production wants its secrets; give them, so only DEBUG is in question
    key = tmp_path / "private.pem"
    key.write_text("not read by this check")
    result = _settings_value(
        {
            "NODE_ENV": "production",
            "SECRET_KEY": "pX7#kq2!vLm9@zR4&wN8*tB3^yH6$cJ1%fD5(gS0)aE-uI+oP=" + "Q" * 10,
            "ADMIN_API_TOKEN": "t" * 40,
            "LICENSE_PRIVATE_KEY_PATH": str(key),
        },
        "settings.DEBUG",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_node_env_production_with_debug_true_is_refused():
    result = _settings_value({"NODE_ENV": "production", "DEBUG": "true"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "NODE_ENV=production and DEBUG=true contradict each other" in result.stderr


def test_node_env_development_means_debug():
    result = _settings_value({"NODE_ENV": "development"}, "settings.DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_an_unknown_node_env_is_refused():
    result = _settings_value({"NODE_ENV": "prod"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "NODE_ENV='prod' is not one of production, development, test" in result.stderr


def test_redis_tls_configures_the_celery_broker_to_check_the_certificate():
    result = _settings_value(
        {"REDIS_URL": "redis://127.0.0.1:6399/0", "REDIS_TLS_ENABLED": "true", "DEBUG": "true"},
        "settings.CELERY_BROKER_URL, settings.CELERY_BROKER_USE_SSL['ssl_cert_reqs'].name",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["rediss://127.0.0.1:6399/0", "CERT_REQUIRED"]
