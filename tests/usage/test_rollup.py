"""usage_rollup_task: raw reports older than the retention become daily rows; totals stay."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from tests.factories import CustomerFactory, SubscriptionFactory
from tests.usage.factories import UsageReportFactory
from usage import metering, selectors
from usage.models import UsageDaily, UsageReport, UsageRollupCursor
from usage.services import rollup_cutoff_day
from usage.tasks import usage_rollup_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _still_clock(monkeypatch):
    """The clock stands still: today's gauges count up to now, so a history read before the
    roll-up and one after it (seconds later on a loaded machine) would differ."""
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: now)


@pytest.fixture
def customer():
    customer = CustomerFactory()
    SubscriptionFactory(customer=customer, plan="starter", status="active")
    return customer


def _seed(customer, today):
    """Two instances over 50 days: old days to roll up, recent days that stay raw, a reset,
    a silence spanning midnight, and growing storage."""
    start = datetime.combine(today - timedelta(days=50), time(22), tzinfo=UTC)
    mqtt = {"a": 0, "b": 0}
    for step in range(50 * 8):  # every 3 hours, skipping some
        at = start + timedelta(hours=3 * step)
        for instance in ("a", "b"):
            if (step + len(instance)) % 7 == 0:
                continue  # a missed report
            mqtt[instance] += 1_000_000 * (step % 5 + 1)
            if instance == "b" and step == 90:
                mqtt[instance] = 123  # restart
            UsageReportFactory(
                customer=customer,
                instance_id=instance,
                reported_at=at + timedelta(minutes=7 if instance == "b" else 0),
                active_devices=step % 13,
                total_devices=20,
                mqtt_bytes_sent=mqtt[instance],
                http_requests=mqtt[instance] // 1000,
                postgres_size_mb=f"{1000 + step}.250",
            )


def _everything(customer, today) -> metering.BillingPeriod:
    start = datetime.combine(today - timedelta(days=60), time.min, tzinfo=UTC)
    return metering.BillingPeriod(start=start, end=start + timedelta(days=62), source="test")


def test_rollup_keeps_totals_and_overage_equal(customer, settings):
    # given raw reports of 50 days, 40 of them older than the retention
    settings.USAGE_RAW_RETENTION_DAYS = 40
    today = timezone.now().date()
    _seed(customer, today)
    period = _everything(customer, today)
    before = selectors.usage_consumption(customer=customer, period=period)
    history_before = selectors.usage_history(customer=customer, days=60)
    raw_before = UsageReport.objects.count()
    # when
    days = usage_rollup_task.apply().get()
    # then every total, peak and integral is unchanged
    after = selectors.usage_consumption(customer=customer, period=period)
    assert days > 0
    assert after.usage == before.usage
    assert after.lines == before.lines
    history_after = selectors.usage_history(customer=customer, days=60)
    assert history_after.daily == history_before.daily
    assert history_after.totals == history_before.totals
    # and the raw table shrank to recent reports plus one anchor per instance
    cutoff = rollup_cutoff_day()
    cutoff_at = datetime.combine(cutoff, time.min, tzinfo=UTC)
    assert UsageReport.objects.count() < raw_before
    assert UsageReport.objects.filter(reported_at__lt=cutoff_at).count() == 2
    assert (
        UsageDaily.objects.filter(customer=customer).count()
        == (cutoff - UsageDaily.objects.order_by("day").first().day).days
    )
    assert UsageRollupCursor.objects.get().rolled_until == cutoff


def test_rollup_twice_changes_nothing(customer, settings):
    settings.USAGE_RAW_RETENTION_DAYS = 40
    today = timezone.now().date()
    _seed(customer, today)
    usage_rollup_task.apply()
    period = _everything(customer, today)
    once = selectors.usage_consumption(customer=customer, period=period)
    rows = UsageDaily.objects.count()
    assert usage_rollup_task.apply().get() == 0
    assert UsageDaily.objects.count() == rows
    assert selectors.usage_consumption(customer=customer, period=period).usage == once.usage


def test_rollup_then_next_report_delta_starts_from_the_anchor(customer, settings):
    # given one old report (cumulative 5,000 bytes) rolled up
    settings.USAGE_RAW_RETENTION_DAYS = 40
    now = datetime.now(tz=UTC).replace(microsecond=0)
    UsageReportFactory(
        customer=customer, reported_at=now - timedelta(days=45), mqtt_bytes_sent=5000
    )
    usage_rollup_task.apply()
    # when the instance reports 5,600 today
    UsageReportFactory(
        customer=customer, reported_at=now - timedelta(hours=1), mqtt_bytes_sent=5600
    )
    # then today counts only 600, the 5,000 stays on its own (rolled-up) day
    history = selectors.usage_history(customer=customer, days=50)
    assert history.daily[-1][1].mqtt_bytes_sent + history.daily[-2][1].mqtt_bytes_sent == 600
    assert history.totals.mqtt_bytes_sent == 5600
    assert UsageDaily.objects.get().mqtt_bytes_sent == 5000


def test_rollup_never_touches_days_that_may_still_receive_reports(settings):
    # even with a retention of 1 day, reports up to 35 days old are still accepted
    settings.USAGE_RAW_RETENTION_DAYS = 1
    now = datetime(2026, 6, 30, 12, tzinfo=UTC)
    assert rollup_cutoff_day(now) == (now - timedelta(days=36)).date()
