"""Every query the usage app sends to the reports table names one customer (what a table
distributed by customer, e.g. on Citus, routes on: docs/scaling.md), apart from the roll-up's
two scans across customers, which are listed here."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.usage.factories import UsageReportFactory
from tests.usage.helpers import now_s, report_body
from usage import selectors, services
from usage.models import UsageReport

pytestmark = pytest.mark.django_db

TABLE = UsageReport._meta.db_table
# The table (or one of its partitions) in a FROM or JOIN, not a column (`FROM "t"."col"`).
REFERENCE = re.compile(rf'\b(?:FROM|JOIN)\s+("?){TABLE}\w*\1(?![."\w])', re.IGNORECASE)
CUSTOMER = re.compile(r'customer_id"?\s*(?:=|IN\b)', re.IGNORECASE)
# usage_rollup: the oldest report, and which customers have reports on the day to roll up.
T = rf'"{TABLE}"'
ACROSS_CUSTOMERS = (
    re.compile(rf'^SELECT {T}\."reported_at" AS "reported_at" FROM {T} ORDER BY'),  # noqa: S608
    re.compile(rf'^SELECT DISTINCT {T}\."customer_id"( AS "customer_id")? FROM {T} WHERE'),  # noqa: S608
)


def _exercise(instance, staff_client) -> list[str]:
    """Every usage path of one customer: both reports, history (built, then from the
    cache), consumption (staff and the key), the device-limit view, the metered push's
    consumption, a roll-up of old reports."""
    customer = instance.customer
    UsageReportFactory(customer=customer, reported_at=now_s() - timedelta(days=50))
    UsageReportFactory(
        customer=customer, instance_id="old", reported_at=now_s() - timedelta(days=49)
    )
    with CaptureQueriesContext(connection) as queries:
        assert instance.report(at=now_s() - timedelta(minutes=3)).status_code == 201
        batch = [
            report_body(instance.customer_id, at=now_s() - timedelta(minutes=m)) for m in (5, 9)
        ]
        assert instance.batch(batch).status_code == 200
        instance.history(days=30)
        instance.history(days=60, page=2, limit=1)
        instance.consumption()
        assert staff_client.get(f"/api/usage/{instance.customer_id}/consumption").status_code == 200
        list(selectors.customers_with_device_usage().filter(pk=customer.pk))
        services.usage_consumption(customer=customer)
        services.usage_rollup()
        instance.history(days=60)
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("table", ["plain", "partitioned"])
def test_every_reports_query_names_the_customer(instance, staff_client, table):
    if table == "partitioned":  # PostgreSQL only; elsewhere the table stays plain
        migration = importlib.import_module("usage.migrations.0004_partition_usage_reports")
        migration.partition_reports(apps, SimpleNamespace(connection=connection))
    statements = _exercise(instance, staff_client)
    touching = [sql for sql in statements if REFERENCE.search(sql) or f'INTO "{TABLE}"' in sql]
    across = [sql for sql in touching if any(p.search(sql.strip()) for p in ACROSS_CUSTOMERS)]
    routed = [sql for sql in touching if sql not in across]
    assert len(routed) > 15  # the paths above did reach the table
    for sql in routed:
        if sql.lstrip().upper().startswith("INSERT"):
            assert '"customer_id"' in sql.split("SELECT", 1)[0], sql
        # each reference to the table comes with a customer predicate
        assert len(CUSTOMER.findall(sql)) >= len(REFERENCE.findall(sql)), sql
    assert {p.pattern for p in ACROSS_CUSTOMERS} == {
        p.pattern for p in ACROSS_CUSTOMERS if any(p.search(sql.strip()) for sql in across)
    }


def test_the_check_tells_a_query_without_customer():
    # the patterns above would catch a reports query that forgot its customer
    sql = f"SELECT COUNT(*) FROM {T} WHERE {T}.reported_at >= now()"  # noqa: S608 - a sample
    assert len(CUSTOMER.findall(sql)) < len(REFERENCE.findall(sql))
