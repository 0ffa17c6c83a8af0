"""usage/summaries.py, closed_window: a window's closed part is cached as one entry. Once
settled it is checked by one probe of the customer's newest report id; a new report makes
one COUNT settle it again; a report committed after a newer one (its transaction was
writing when the newest id was read) is still counted."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from tests.usage.test_summaries import NOWS, Reports, _assert_same, _customer, _seed
from usage import selectors
from usage.models import COUNTER_FIELDS, UsageReport

TABLE = UsageReport._meta.db_table


def _span_counts(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT COUNT(*)") and f'FROM "{TABLE}"' in q["sql"]
    ]


@pytest.mark.django_db
def test_a_settled_window_is_probed_and_a_new_report_counts_once(frozen):
    # given a 5-day history read once (its closed part cached and settled)
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 11)
    first_day, end_day = now.date() - timedelta(days=4), now.date() + timedelta(days=1)
    _assert_same(customer, first_day, end_day)
    # when read again, nothing new: no COUNT over the month, the newest id is probed
    with CaptureQueriesContext(connection) as queries:
        _assert_same(customer, first_day, end_day)
    assert _span_counts(queries) == []
    # when a report arrives (today's live hour), the next read counts once and settles again
    reports = Reports(customer, 12)
    reports.add("full-0", now - timedelta(minutes=2), [10**8] * 7)
    reports.save()
    with CaptureQueriesContext(connection) as queries:
        _assert_same(customer, first_day, end_day)
    assert len(_span_counts(queries)) == 1
    with CaptureQueriesContext(connection) as queries:
        _assert_same(customer, first_day, end_day)
    assert _span_counts(queries) == []


@pytest.mark.django_db(transaction=True)
def test_a_report_committed_after_a_newer_one_is_counted(frozen):
    """On PostgreSQL a report can commit after a newer one (its id drawn first); on SQLite
    it cannot (one writer at a time: the newer report waits, which this shows), so there the
    reports commit in order and the same answer is checked."""
    # given a customer with ten days of reports
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 13)
    first_day, end_day = now.date() - timedelta(days=4), now.date() + timedelta(days=1)
    late_at = now - timedelta(days=2, hours=5, seconds=3)  # into a cached past day
    inserted, release, failed = threading.Event(), threading.Event(), []

    def slow_writer() -> None:
        try:
            with transaction.atomic():  # draws its id, then commits after a newer report
                UsageReport.objects.create(
                    customer=customer,
                    instance_id="full-0",
                    report_id=uuid.uuid4(),
                    reported_at=late_at,
                    received_at=now,
                    active_devices=1000,
                    total_devices=1000,
                    **dict.fromkeys(COUNTER_FIELDS, 10**11),
                )
                inserted.set()
                release.wait(timeout=30)
        except Exception as error:  # noqa: BLE001 - reported to the test below
            failed.append(error)
            inserted.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    newer = Reports(customer, 14)
    newer.add("full-1", now - timedelta(days=1, hours=2), [10**10] * 7)
    try:
        assert inserted.wait(timeout=30)
        if connection.vendor == "postgresql":
            # when a newer report commits first and the history is read (and cached) meanwhile
            newer.save()
            selectors.usage_days(customer=customer, first_day=first_day, end_day=end_day)
        else:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 200")
            try:
                with pytest.raises(OperationalError, match="locked"):
                    newer.save()
            finally:
                with connection.cursor() as cursor:  # the settings' 20 s again
                    cursor.execute("PRAGMA busy_timeout = 20000")
    finally:
        release.set()
        writer.join(timeout=30)
    if connection.vendor != "postgresql":
        newer.save()
        selectors.usage_days(customer=customer, first_day=first_day, end_day=end_day)
    assert not failed
    assert UsageReport.objects.filter(customer=customer, reported_at=late_at).exists()
    # then the late report, committed with an id below the newest one read, is counted
    _assert_same(customer, first_day, end_day)
    _assert_same(customer, first_day, end_day)
