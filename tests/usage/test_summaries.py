"""usage/summaries.py: usage per day summed in SQL and cached in chunks gives exactly what
metering.daily_usage gives over the raw reports, for every kind of instance, and stays
exact when reports arrive late into cached days."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import CustomerFactory, SubscriptionFactory
from usage import selectors, summaries
from usage.models import COUNTER_FIELDS, UsageReport

pytestmark = pytest.mark.django_db

# A fixed "now" late in a UTC day, so a day, today's closed hours and the live hour all
# hold reports; 12:00 exercises a window whose live part starts at noon.
NOWS = [
    datetime(2026, 3, 20, 21, 37, 11, tzinfo=UTC),
    datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 21, 0, 4, 59, tzinfo=UTC),
]


def _customer():
    customer = CustomerFactory()
    SubscriptionFactory(customer=customer, plan="starter", status="active")
    return customer


class Reports:
    """Builds one customer's raw reports straight into the table."""

    def __init__(self, customer, seed: int) -> None:
        self.customer, self.rng, self.rows = customer, random.Random(seed), []  # noqa: S311

    def add(self, instance: str, at: datetime, counters, *, started=None, devices=(3, 5), mb=None):
        self.rows.append(
            UsageReport(
                customer=self.customer,
                instance_id=instance,
                report_id=uuid.uuid4(),
                reported_at=at,
                received_at=at,
                started_at=started,
                active_devices=devices[0],
                total_devices=devices[1],
                postgres_size_mb=mb,
                postgres_row_count=None if mb is None else int(mb * 10),
                **dict(zip(COUNTER_FIELDS, counters, strict=True)),
            )
        )

    def life(self, instance: str, start: datetime, end: datetime, kind: str) -> None:
        """An instance reporting from start to end: `full` (every counter, restarts, gaps,
        storage with decimals), `device` (devices only), `partial` (some counters never),
        `switch` (leaves counters out now and then: computed from raw rows)."""
        rng = self.rng
        at, started = start, start - timedelta(hours=rng.randint(1, 50))
        values = [rng.randint(0, 10**6) for _ in COUNTER_FIELDS]
        never = {1, 4, 6} if kind == "partial" else set()
        while at < end:
            if rng.random() < 0.02:  # restart: new started_at, counters from zero
                started, values = at - timedelta(seconds=rng.randint(1, 60)), [0] * 7
            elif rng.random() < 0.01:  # restart seen only as a counter going down
                values = [v // 3 for v in values]
            elif rng.random() < 0.02:  # restart seen only by started_at: counters grew past
                started = at - timedelta(seconds=rng.randint(1, 60))
                values = [v + rng.randint(1, 5000) for v in values]
            else:
                values = [v + rng.randint(0, 5000) for v in values]
            counters = [None if i in never else v for i, v in enumerate(values)]
            if kind == "device":
                counters = [None] * 7
            if kind == "switch" and rng.random() < 0.2:
                counters = [None if rng.random() < 0.5 else v for v in counters]
            mb = None if kind == "device" else Decimal(rng.randint(0, 10**7)) / 1000
            devices = (rng.randint(0, 40), 45)
            self.add(instance, at, counters, started=started, devices=devices, mb=mb)
            step = rng.choice([300, 300, 300, 600, 900, 3600, 7200, 3 * 3600, 30 * 3600])
            at += timedelta(seconds=step)

    def save(self) -> None:
        UsageReport.objects.bulk_create(self.rows)
        self.rows = []


def _seed(customer, now: datetime, seed: int) -> None:
    reports = Reports(customer, seed)
    begin = datetime.combine(now.date() - timedelta(days=9), time(5), tzinfo=UTC)
    for index, kind in enumerate(["full", "full", "device", "partial", "switch"]):
        offset = timedelta(seconds=reports.rng.randint(0, 3600))
        reports.life(f"{kind}-{index}", begin + offset, now + timedelta(minutes=5), kind)
    # On a midnight, and right before the window of a 5-day history: baselines that leave
    # counters out (carried from earlier reports) and gauges held into the first day.
    midnight = datetime.combine(now.date() - timedelta(days=4), time.min, tzinfo=UTC)
    reports.add("edge", midnight - timedelta(days=2), [7] * 7, started=midnight)
    reports.add("edge", midnight - timedelta(minutes=30), [None] * 7, started=midnight)
    reports.add("edge", midnight, [9] * 7, started=midnight)
    reports.add("edge", midnight + timedelta(days=1), [12] * 7, started=midnight)
    reports.save()


def _windows(now: datetime):
    today = now.date()
    return [
        (today - timedelta(days=4), today + timedelta(days=1)),  # a 5-day history
        (today - timedelta(days=8), today + timedelta(days=12)),  # a period ending later
        (today - timedelta(days=6), today - timedelta(days=1)),  # days that are all past
        (today, today + timedelta(days=1)),  # today only
    ]


def _assert_same(customer, first_day, end_day) -> None:
    summed = selectors.usage_days(customer=customer, first_day=first_day, end_day=end_day)
    plain = selectors.usage_days_from_raw_rows(
        customer=customer, first_day=first_day, end_day=end_day
    )
    assert summed == plain


@pytest.mark.parametrize("now", NOWS, ids=lambda n: n.strftime("%H:%M"))
@pytest.mark.parametrize("seed", [1, 2])
def test_usage_days_equal_the_plain_computation(frozen, now, seed):
    # given five instances of every kind over ten days
    frozen(now)
    customer = _customer()
    _seed(customer, now, seed)
    for first_day, end_day in _windows(now):
        # when summed (first from SQL, then from the cached chunks), then
        _assert_same(customer, first_day, end_day)
        _assert_same(customer, first_day, end_day)


def test_history_lists_instances_and_counts_reports_as_the_raw_rows_do(frozen):
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 3)
    history = selectors.usage_history(customer=customer, days=5)
    start = datetime.combine(history.first_day, time.min, tzinfo=UTC)
    end = datetime.combine(history.end_day, time.min, tzinfo=UTC)
    assert history.instances == selectors.instance_meters(customer=customer, start=start, end=end)
    assert history.report_count == history.reports.count() > 0


def test_late_reports_into_cached_days_are_counted(frozen):
    # given a history read once, so its past days are cached
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 4)
    first_day, end_day = now.date() - timedelta(days=4), now.date() + timedelta(days=1)
    _assert_same(customer, first_day, end_day)
    # when reports arrive late: in the middle of a day, in the last hour before a midnight
    # (its gauges hold into the next day), on the day before the window, and today
    reports = Reports(customer, 5)
    day = datetime.combine(now.date() - timedelta(days=2), time.min, tzinfo=UTC)
    late = [
        ("full-0", day + timedelta(hours=11, seconds=17)),
        ("full-1", day - timedelta(minutes=41)),
        ("late-new", day - timedelta(days=2, minutes=10)),
        ("late-new", datetime.combine(first_day, time.min, tzinfo=UTC) - timedelta(minutes=3)),
        ("full-0", now - timedelta(hours=3, seconds=1)),
    ]
    for instance, at in late:
        reports.add(instance, at, [10**9] * 7, devices=(1000, 1000), mb=Decimal("4.5"))
    reports.save()
    # then the summed days still equal the plain computation
    _assert_same(customer, first_day, end_day)
    _assert_same(customer, first_day - timedelta(days=3), end_day)


def test_hour_later_the_cache_moves_on(frozen):
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 6)
    first_day, end_day = now.date() - timedelta(days=4), now.date() + timedelta(days=2)
    _assert_same(customer, first_day, end_day)
    for later in (timedelta(hours=1), timedelta(hours=3), timedelta(days=1, minutes=7)):
        frozen(now + later)
        _assert_same(customer, first_day, end_day)


def test_second_read_sums_only_the_live_part(frozen):
    # given a history read once
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 7)
    selectors.usage_history(customer=customer, days=5)
    # when read again
    with CaptureQueriesContext(connection) as queries:
        again = selectors.usage_history(customer=customer, days=5)
    # then only the hour since the last whole hour is summed from raw rows (the two
    # statements of one summary), the cached days are checked by one count
    summed = [q["sql"] for q in queries.captured_queries if "WITH r AS" in q["sql"]]
    assert len(summed) == 2
    assert again.totals.report_count > 0


def test_a_chunk_is_rebuilt_when_its_count_changes(frozen):
    now = NOWS[0]
    frozen(now)
    customer = _customer()
    _seed(customer, now, 8)
    selectors.usage_history(customer=customer, days=5)
    # a report arrives in a past day: the check counts, then that day is summed again
    reports = Reports(customer, 9)
    reports.add("full-0", now - timedelta(days=2, seconds=5), [1] * 7)
    reports.save()
    with CaptureQueriesContext(connection) as queries:
        selectors.usage_history(customer=customer, days=5)
    summed = [q["sql"] for q in queries.captured_queries if "WITH r AS" in q["sql"]]
    assert len(summed) == 4  # the changed day and the live part


def test_chunk_key_names_the_customer_cursor_and_bounds():
    customer = CustomerFactory()
    key = summaries.chunk_key(customer, None, 86_400, 172_800)
    assert customer.customer_id in key
    assert key.endswith(":None:86400:172800")
