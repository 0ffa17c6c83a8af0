"""Settings parse strictly: a misspelt boolean stops start-up and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_bool

ROOT = Path(__file__).resolve().parents[2]


def _django_check(variables: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **variables}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        (" yes ", True),
    ],
)
def test_env_bool_reads_the_accepted_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("BILLING_TEST_FLAG", raw)
    assert env_bool("BILLING_TEST_FLAG", not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_or_empty_is_the_default(monkeypatch, default):
    monkeypatch.delenv("BILLING_TEST_FLAG", raising=False)
    assert env_bool("BILLING_TEST_FLAG", default) is default
    monkeypatch.setenv("BILLING_TEST_FLAG", "")
    assert env_bool("BILLING_TEST_FLAG", default) is default


@pytest.mark.parametrize("raw", ["ture", "flase", "on", "off", "2", "y", "enabled"])
def test_env_bool_refuses_anything_else_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("BILLING_TEST_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match=f"BILLING_TEST_FLAG={raw!r} is not a boolean"):
        env_bool("BILLING_TEST_FLAG", True)


@pytest.mark.parametrize(
    "variable",
    ["SIMULATE_K8S_DEPLOYMENT", "DEBUG", "EMAIL_USE_TLS", "CELERY_TASK_ALWAYS_EAGER"],
)
def test_a_misspelt_boolean_stops_start_up(variable):
    # Before strict parsing, SIMULATE_K8S_DEPLOYMENT=ture silently chose the real Helm backend.
    result = _django_check({variable: "ture"})
    assert result.returncode != 0
    assert f"{variable}='ture' is not a boolean" in result.stderr
