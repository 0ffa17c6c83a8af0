"""On PostgreSQL a single report's INSERT is a prepared statement (parsed and planned once
per connection); with DATABASE_PREPARED_STATEMENTS=false (behind a transaction-mode pooler)
it is sent as it is, and reports are stored the same."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from tests.usage.helpers import now_s, report_body
from usage.models import UsageReport

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"
ROOT = Path(__file__).resolve().parents[2]


def _prepared_inserts() -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE 'INSERT INTO %%usage_usagereport%%'"
        )
        return cursor.fetchall()


def _report_three_times(instance) -> None:
    for minutes in (3, 2, 1):
        body = report_body(instance.customer_id, at=now_s() - timedelta(minutes=minutes))
        assert instance.client.post("/api/usage/report", body, format="json").status_code == 201


def test_a_single_reports_insert_is_prepared_once_per_connection(instance):
    _report_three_times(instance)
    assert UsageReport.objects.filter(customer__customer_id=instance.customer_id).count() == 3
    if POSTGRES:
        [(statement, runs)] = _prepared_inserts()
        assert "ON CONFLICT DO NOTHING" in statement
        assert runs == 3
        # planned once for any values (custom plans of the history's summaries were slow)
        with connection.cursor() as cursor:
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_generic_plan"


def test_without_prepared_statements_reports_are_stored_the_same(instance, monkeypatch):
    if POSTGRES:
        # what DATABASE_PREPARED_STATEMENTS=false leaves: psycopg prepares nothing
        connection.ensure_connection()
        monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    _report_three_times(instance)
    assert UsageReport.objects.filter(customer__customer_id=instance.customer_id).count() == 3
    if POSTGRES:
        assert _prepared_inserts() == []


@pytest.mark.parametrize(("raw", "threshold"), [("", "5"), ("false", "None")])
def test_the_setting_turns_preparing_on_or_off(raw, threshold):
    code = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default'].get('OPTIONS', {}).get('prepare_threshold'))"
    )
    env = {
        **os.environ,
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "DATABASE_PREPARED_STATEMENTS": raw,
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == threshold
