"""Monthly partitions of usage reports (usage/partitions.py, migration 0004).

The suite creates its tables from the models, so each test here turns the test database's
table into the partitioned one with the migration's own function (PostgreSQL's DDL is
transactional: the test's rollback undoes it). On SQLite the same calls leave the plain
table, and roll-up deletes rows as before: both are checked.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from tests.factories import CustomerFactory, SubscriptionFactory
from tests.usage.factories import UsageReportFactory
from tests.usage.helpers import Instance, report_body
from usage import metering, partitions, selectors
from usage.models import COUNTER_FIELDS, UsageReport
from usage.services import usage_rollup
from usage.tasks import usage_partitions_maintain_task

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"
NOW = datetime(2026, 6, 17, 14, 5, 9, tzinfo=UTC)
migration = importlib.import_module("usage.migrations.0004_partition_usage_reports")


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def partition_table() -> None:
    migration.partition_reports(apps, SimpleNamespace(connection=connection))


def _home(report_pk: int) -> str:
    """The partition a report is stored in."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {partitions.TABLE} WHERE id = %s",  # noqa: S608
            [report_pk],
        )
        return cursor.fetchone()[0].strip('"')


def _months(start: datetime, count: int) -> list[str]:
    names = []
    for _ in range(count):
        names.append(partitions.partition_name(start))
        start = partitions.next_month(start)
    return names


def test_migration_keeps_every_row_and_new_reports_go_to_their_month(frozen, settings):
    # given reports of two months, read once
    settings.RATE_LIMIT_USAGE = "100000/h"
    instance = Instance()
    customer = instance.customer
    for days in (50, 20, 1):
        UsageReportFactory(
            customer=customer, reported_at=NOW - timedelta(days=days), mqtt_bytes_sent=1000 * days
        )
    before = selectors.usage_history(customer=customer, days=60)
    rows = set(UsageReport.objects.values_list("id", "reported_at", "mqtt_bytes_sent"))
    # when the table is partitioned
    partition_table()
    # then every row is still there and reads the same
    assert set(UsageReport.objects.values_list("id", "reported_at", "mqtt_bytes_sent")) == rows
    assert selectors.usage_history(customer=customer, days=60).totals == before.totals
    body = report_body(instance.customer_id, at=NOW - timedelta(minutes=1))
    assert instance.client.post("/api/usage/report", body, format="json").status_code == 201
    new = UsageReport.objects.get(report_id=body["report_id"])
    assert new.pk > max(pk for pk, _, _ in rows)
    if POSTGRES:
        assert partitions.is_partitioned()
        names = [p.name for p in partitions.partitions()]
        # the old rows in one partition up to the month after the newest, then months ahead
        first = partitions.next_month(partitions.month_start(NOW.date()))
        assert names == [partitions.LEGACY, *_months(first, 4), partitions.KEPT]
        assert {_home(pk) for pk, _, _ in rows} == {partitions.LEGACY}
    else:
        assert not partitions.is_partitioned()
        assert partitions.partitions() == []


def test_repeats_are_refused_across_months(frozen, settings):
    # given a partitioned table and a report stored in this month's partition
    settings.RATE_LIMIT_USAGE = "100000/h"
    partition_table()
    partitions.usage_partitions_ensure(first=(NOW - timedelta(days=40)).date(), months=2)
    instance = Instance()
    body = report_body(instance.customer_id, at=NOW - timedelta(minutes=2))
    assert instance.client.post("/api/usage/report", body, format="json").status_code == 201
    # when it is sent again, and once more with the same report_id a month earlier
    again = instance.client.post("/api/usage/report", body, format="json")
    earlier = dict(body, reported_at=(NOW - timedelta(days=31)).isoformat())
    elsewhere = instance.client.post("/api/usage/report", earlier, format="json")
    # then both are repeats: one row
    assert again.json()["duplicate"] is True
    assert elsewhere.status_code == 200
    assert elsewhere.json()["duplicate"] is True
    assert UsageReport.objects.count() == 1
    if POSTGRES:
        assert _home(UsageReport.objects.get().pk) == partitions.partition_name(
            partitions.month_start(NOW.date())
        )


def _seed(customer, start: datetime, end: datetime) -> None:
    """Three instances every 3 hours: `a` measures everything (and restarts once), `quiet`
    stops 70 days before NOW (its last report stays its baseline), `gappy` leaves MQTT out
    of its last old reports (a baseline carried from earlier rows)."""
    values = {"a": 0, "quiet": 0, "gappy": 0}
    at, step = start, 0
    rows = []
    while at < end:
        for instance in values:
            if instance == "quiet" and at > NOW - timedelta(days=70):
                continue
            values[instance] += 1_000_000 * (step % 5 + 1)
            if instance == "a" and step == 200:
                values[instance] = 5  # restart
            counters = dict.fromkeys(COUNTER_FIELDS, values[instance])
            old_gap = NOW - timedelta(days=80) < at < NOW - timedelta(days=30)
            if instance == "gappy" and old_gap:
                counters["mqtt_bytes_sent"] = None
            rows.append(
                UsageReport(
                    customer=customer,
                    instance_id=instance,
                    report_id=uuid.uuid4(),
                    reported_at=at + timedelta(minutes=len(instance)),
                    received_at=at,
                    active_devices=step % 11,
                    total_devices=12,
                    postgres_size_mb=f"{100 + step % 7}.125",
                    postgres_row_count=step,
                    **counters,
                )
            )
        at += timedelta(hours=3)
        step += 1
    UsageReport.objects.bulk_create(rows)


def test_rolled_up_months_are_dropped_and_their_baselines_kept(frozen, settings):
    # given a partitioned table holding four months of reports
    settings.USAGE_RAW_RETENTION_DAYS = 40
    partition_table()
    first = partitions.month_start((NOW - timedelta(days=110)).date())
    partitions.usage_partitions_ensure(first=first.date(), months=5)
    customer = CustomerFactory()
    SubscriptionFactory(customer=customer, plan="starter", status="active")
    _seed(customer, first + timedelta(hours=1), NOW)
    period_start = datetime.combine(first.date(), time.min, tzinfo=UTC)
    period = metering.BillingPeriod(start=period_start, end=NOW + timedelta(days=2), source="test")
    before = selectors.usage_consumption(customer=customer, period=period)
    history = selectors.usage_history(customer=customer, days=120)
    count = UsageReport.objects.count()
    # when rolled up and maintained
    assert usage_rollup(now=NOW) > 0
    outcome = usage_partitions_maintain_task.apply().get()
    # then every total, peak and integral is unchanged, and rows are gone
    after = selectors.usage_consumption(customer=customer, period=period)
    assert after.usage == before.usage
    assert after.lines == before.lines
    assert selectors.usage_history(customer=customer, days=120).daily == history.daily
    assert UsageReport.objects.count() < count
    rolled = selectors.rolled_until()
    boundary = datetime.combine(rolled, time.min, tzinfo=UTC)
    baselines = selectors.raw_predecessors(customer_pk=customer.pk, before=boundary)
    assert set(baselines) == {"a", "quiet", "gappy"}
    if POSTGRES:
        # whole months before the cursor were dropped, their baselines kept aside
        gone = [name for name in _months(first, 5) if name in outcome["dropped"]]
        assert gone
        assert gone == outcome["dropped"]
        assert set(outcome["dropped"]).isdisjoint(p.name for p in partitions.partitions())
        kept = {pk for _, rows in baselines.values() for pk in rows}
        homes = {_home(pk) for pk in kept}
        assert partitions.KEPT in homes
        # the quiet instance's last report, and the rows the gappy one carries MQTT from
        assert len(baselines["gappy"][1]) > 1
        assert _home(next(iter(baselines["quiet"][1]))) == partitions.KEPT
    else:
        assert outcome == {"created": [], "dropped": []}
    # and the quiet instance's next report is a delta from its kept baseline
    quiet = baselines["quiet"][0]
    UsageReportFactory(
        customer=customer,
        instance_id="quiet",
        reported_at=NOW - timedelta(hours=1),
        **{name: value + 600 for name, value in zip(COUNTER_FIELDS, quiet.counters, strict=True)},
    )
    today = selectors.usage_days(
        customer=customer, first_day=NOW.date(), end_day=NOW.date() + timedelta(days=1)
    )
    assert today[NOW.date()].mqtt_bytes_sent - history.daily[-1][1].mqtt_bytes_sent == 600


def test_maintain_creates_months_ahead_once_and_moves_strays_out_of_the_default(frozen):
    # given a partitioned table whose partition two months ahead was not created in time
    partition_table()
    late = partitions.next_month(partitions.next_month(partitions.month_start(NOW.date())))
    if POSTGRES:
        with connection.cursor() as cursor:
            name = partitions.partition_name(late)
            cursor.execute(f'ALTER TABLE "{partitions.TABLE}" DETACH PARTITION "{name}"')
            cursor.execute(f'DROP TABLE "{name}"')
    stray = UsageReportFactory(reported_at=late + timedelta(days=3))
    # when maintained, twice
    first = usage_partitions_maintain_task.apply().get()
    second = usage_partitions_maintain_task.apply().get()
    # then the month is created once, with its report moved in from the default partition
    assert UsageReport.objects.get().pk == stray.pk
    if POSTGRES:
        assert first["created"] == [partitions.partition_name(late)]
        assert second == {"created": [], "dropped": []}
        assert _home(stray.pk) == partitions.partition_name(late)
    else:
        assert first == second == {"created": [], "dropped": []}
