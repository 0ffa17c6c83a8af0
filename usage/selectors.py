"""Reads of usage: history, consumption per billing period, device-limit flags."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from core import plans
from customers.models import Customer
from usage import metering, summaries
from usage.models import (
    COUNTER_FIELDS,
    METER_FIELDS,
    CustomerUsage,
    UsageDaily,
    UsageReport,
    UsageRollupCursor,
)


@functools.cache
def _rolled_until_statement() -> str:
    """Built once per process from _meta (through the ORM it cost more than the read)."""
    opts = UsageRollupCursor._meta
    quote = connection.ops.quote_name
    table = quote(opts.db_table)
    return (
        f"SELECT {quote(opts.get_field('rolled_until').column)} FROM {table} "  # noqa: S608 - _meta
        f"WHERE {quote(opts.pk.column)} = %s"
    )


def rolled_until() -> date | None:
    """Days before this are in UsageDaily; None before the first roll-up."""
    with connection.cursor() as cursor:
        cursor.execute(_rolled_until_statement(), [1])
        row = cursor.fetchone()
    return row[0] if row else None  # a date on both backends (a DATE column)


def raw_points(
    *, customer_pk: int, start: datetime, end: datetime, instance_id: str | None = None
) -> list[tuple[metering.Point, int]]:
    """The customer's raw reports in [start, end) (of one instance if given), oldest
    first, with their row ids."""
    reports = UsageReport.objects.filter(
        customer_id=customer_pk, reported_at__gte=start, reported_at__lt=end
    )
    if instance_id is not None:
        reports = reports.filter(instance_id=instance_id)
    return [(metering.Point.of(r), r.pk) for r in reports.order_by("reported_at", "id")]


# Each instance's latest report before a time, found through the (customer, instance,
# reported_at) unique index one instance at a time, instead of ranking every earlier report.
_LATEST_BEFORE = """
    SELECT latest.* FROM unnest(%s::varchar[]) AS wanted(instance_id)
    CROSS JOIN LATERAL (
        SELECT * FROM usage_usagereport AS report
        WHERE report.customer_id = %s AND report.instance_id = wanted.instance_id
          AND report.reported_at < %s
        ORDER BY report.reported_at DESC LIMIT 1
    ) AS latest
"""


def raw_predecessors(
    *, customer_pk: int, before: datetime, instances: Iterable[str] | None = None
) -> dict[str, tuple[metering.Point, frozenset[int]]]:
    """The baseline of each of the customer's instances (or of `instances` only) before
    `before`: its latest raw report, carrying the last measured value of each counter that
    report left out (see metering.carry), with the ids of the rows it is made of."""
    latest: Iterable[UsageReport]
    if instances is not None and connection.vendor == "postgresql":
        latest = UsageReport.objects.raw(_LATEST_BEFORE, [sorted(instances), customer_pk, before])
    else:
        earlier = UsageReport.objects.filter(customer_id=customer_pk, reported_at__lt=before)
        if instances is not None:
            earlier = earlier.filter(instance_id__in=list(instances))
        latest = earlier.annotate(
            rank=Window(
                RowNumber(), partition_by=[F("instance_id")], order_by=F("reported_at").desc()
            )
        ).filter(rank=1)
    baselines = {r.instance_id: (metering.Point.of(r), frozenset([r.pk])) for r in latest}
    missing = {
        instance: [i for i, value in enumerate(point.counters) if value is None]
        for instance, (point, _) in baselines.items()
    }
    missing = {instance: indexes for instance, indexes in missing.items() if indexes}
    if missing:
        baselines.update(_carried(customer_pk, before, baselines, missing))
    return baselines


def _carried(
    customer_pk: int,
    before: datetime,
    baselines: dict[str, tuple[metering.Point, frozenset[int]]],
    missing: dict[str, list[int]],
) -> dict[str, tuple[metering.Point, frozenset[int]]]:
    """Fill the counters the latest reports left out from the instances' earlier reports,
    newest first, stopping at a restart (a different `started_at`). Only instances that
    left something out pay for this query; one that never measured a counter finds none."""
    wanted = {name for indexes in missing.values() for name in (COUNTER_FIELDS[i] for i in indexes)}
    earlier = (
        UsageReport.objects.filter(
            customer_id=customer_pk, instance_id__in=list(missing), reported_at__lt=before
        )
        .filter(reduce(operator.or_, (Q(**{f"{name}__isnull": False}) for name in wanted)))
        .order_by("instance_id", "-reported_at")
        .only("id", "instance_id", "started_at", *wanted)
    )
    filled: dict[str, tuple[metering.Point, frozenset[int]]] = {}
    counters = {instance: list(baselines[instance][0].counters) for instance in missing}
    rows = {instance: set(baselines[instance][1]) for instance in missing}
    for row in earlier.iterator(chunk_size=500):
        indexes, latest = missing[row.instance_id], baselines[row.instance_id][0]
        if not indexes:
            continue
        started = int(row.started_at.timestamp()) if row.started_at else None
        if started is not None and latest.started_at is not None and started != latest.started_at:
            indexes.clear()  # before a restart: those values no longer count
            continue
        for i in list(indexes):
            value = getattr(row, COUNTER_FIELDS[i])
            if value is not None:
                counters[row.instance_id][i] = int(value)
                rows[row.instance_id].add(row.pk)
                indexes.remove(i)
    for instance in missing:
        point = baselines[instance][0]
        filled[instance] = (
            metering.Point(
                instance_id=point.instance_id,
                at=point.at,
                counters=tuple(counters[instance]),
                active_devices=point.active_devices,
                total_devices=point.total_devices,
                storage_kb=point.storage_kb,
                started_at=point.started_at,
            ),
            frozenset(rows[instance]),
        )
    return filled


def usage_days(
    *, customer: Customer, first_day: date, end_day: date
) -> dict[date, metering.UsageTotals]:
    """The customer's usage per UTC day in [first_day, end_day): rolled-up days from
    UsageDaily, later days from raw reports (summed in SQL, see usage/summaries.py),
    exactly as metering.daily_usage computes them."""
    return _usage_window(
        customer=customer, first_day=first_day, end_day=end_day, rolled=rolled_until()
    )[0]


def _usage_window(
    *, customer: Customer, first_day: date, end_day: date, rolled: date | None
) -> tuple[dict[date, metering.UsageTotals], summaries.RawWindow | None]:
    """usage_days, and what the raw part knows of its reports (None: no raw days), with
    `rolled` the roll-up cursor (rolled_until)."""
    boundary = rolled or first_day
    days: dict[date, metering.UsageTotals] = {}
    if first_day < min(end_day, boundary):  # any rolled-up day in the window
        days = {
            row.day: metering.UsageTotals.of(row)
            for row in UsageDaily.objects.filter(
                customer=customer, day__gte=first_day, day__lt=min(end_day, boundary)
            )
        }
    raw_first = max(first_day, boundary)
    if raw_first >= end_day:
        return days, None
    now = timezone.now()
    start = datetime.fromtimestamp(metering.day_start(raw_first), tz=UTC)
    end = datetime.fromtimestamp(metering.day_start(end_day), tz=UTC)

    def baselines(instances: set[str], before: datetime) -> dict[str, metering.Point]:
        found = raw_predecessors(customer_pk=customer.pk, before=before, instances=instances)
        return {instance: point for instance, (point, _) in found.items()}

    def fallback(instance: str, baseline: metering.Point | None):
        points = raw_points(customer_pk=customer.pk, start=start, end=end, instance_id=instance)
        return metering.daily_usage(
            points=[p for p, _ in points],
            predecessors={instance: baseline} if baseline else {},
            first_day=raw_first,
            end_day=end_day,
            until=int(now.timestamp()),
        )

    raw = summaries.raw_window(
        customer=customer,
        first_day=raw_first,
        end_day=end_day,
        rolled=rolled,
        now=now,
        baselines=baselines,
        fallback=fallback,
    )
    days.update(raw.days)
    return days, raw


def usage_days_from_raw_rows(
    *, customer: Customer, first_day: date, end_day: date
) -> dict[date, metering.UsageTotals]:
    """usage_days the plain way: every raw report read into Python and metered there. The
    reference the SQL summaries are tested and benchmarked against."""
    boundary = rolled_until() or first_day
    days: dict[date, metering.UsageTotals] = {
        row.day: metering.UsageTotals.of(row)
        for row in UsageDaily.objects.filter(
            customer=customer, day__gte=first_day, day__lt=min(end_day, boundary)
        )
    }
    raw_first = max(first_day, boundary)
    if raw_first < end_day:
        start = datetime.fromtimestamp(metering.day_start(raw_first), tz=UTC)
        end = datetime.fromtimestamp(metering.day_start(end_day), tz=UTC)
        points = raw_points(customer_pk=customer.pk, start=start, end=end)
        predecessors = raw_predecessors(customer_pk=customer.pk, before=start)
        days.update(
            metering.daily_usage(
                points=[p for p, _ in points],
                predecessors={k: p for k, (p, _) in predecessors.items()},
                first_day=raw_first,
                end_day=end_day,
                until=int(timezone.now().timestamp()),
            )
        )
    return days


def usage_consumption(
    *,
    customer: Customer,
    period: metering.BillingPeriod | None = None,
    at: datetime | None = None,
    plan: plans.Plan | None = None,
) -> metering.Consumption:
    """The customer's consumption and overage in `period` (default: the billing period
    containing `at`, default now), against `plan` (default: the plan entitled now)."""
    subscription = getattr(customer, "subscription", None)
    if period is None:
        period = metering.billing_period(subscription=subscription, at=at or timezone.now())
    days = usage_days(customer=customer, first_day=period.first_day, end_day=period.end_day)
    return metering.consumption(
        customer_id=customer.customer_id,
        subscription=subscription,
        period=period,
        days=days.values(),
        plan=plan,
    )


@dataclass(frozen=True)
class InstanceMeters:
    """Which meters one instance reported in a window: a meter is reported when any of its
    fields was (usage.models.METER_FIELDS); `unmeasured` lists the fields never sent."""

    instance_id: str
    reports: int
    last_reported_at: datetime
    meters: tuple[str, ...]
    unmeasured: tuple[str, ...]


@dataclass(frozen=True)
class UsageHistory:
    first_day: date
    end_day: date  # exclusive
    daily: list[tuple[date, metering.UsageTotals]]  # every day, oldest first
    totals: metering.UsageTotals
    reports: QuerySet[UsageReport]  # raw reports of the window still kept, newest first
    report_count: int  # how many (known from the summaries: paging need not count them)
    instances: list[InstanceMeters]  # instances with raw reports in the window, by id


def instance_meters(*, customer: Customer, start: datetime, end: datetime) -> list[InstanceMeters]:
    """Per instance with raw reports in [start, end): how many, the latest, and which meters
    it reports (one grouped query; COUNT of a column counts its non-NULL values)."""
    fields = sorted({name for names in METER_FIELDS.values() for name in names})
    rows = (
        UsageReport.objects.filter(customer=customer, reported_at__gte=start, reported_at__lt=end)
        .order_by("instance_id")
        .values("instance_id")
        .annotate(
            _reports=Count("id"),
            _last=Max("reported_at"),
            **{f"_n_{name}": Count(name) for name in fields},
        )
    )
    return [
        _meters(
            row["instance_id"],
            row["_reports"],
            row["_last"],
            {name for name in fields if row[f"_n_{name}"]},
        )
        for row in rows
    ]


def _meters(instance_id: str, reports: int, last: datetime, measured: set[str]) -> InstanceMeters:
    fields = sorted({name for names in METER_FIELDS.values() for name in names})
    return InstanceMeters(
        instance_id=instance_id,
        reports=reports,
        last_reported_at=last,
        meters=tuple(meter for meter, names in METER_FIELDS.items() if measured & set(names)),
        unmeasured=tuple(name for name in fields if name not in measured),
    )


def usage_history(*, customer: Customer, days: int, today: date | None = None) -> UsageHistory:
    """The last `days` UTC days up to and including today: a daily series, its totals, and
    the raw reports (those not yet rolled up)."""
    today = today or timezone.now().astimezone(UTC).date()
    first_day, end_day = today - timedelta(days=days - 1), today + timedelta(days=1)
    rolled = rolled_until()
    by_day, raw = _usage_window(
        customer=customer, first_day=first_day, end_day=end_day, rolled=rolled
    )
    daily = [
        (day, by_day.get(day, metering.UsageTotals()))
        for day in (first_day + timedelta(days=n) for n in range(days))
    ]
    raw_from = max(first_day, rolled or first_day)
    raw_start = datetime.fromtimestamp(metering.day_start(raw_from), tz=UTC)
    raw_end = datetime.fromtimestamp(metering.day_start(end_day), tz=UTC)
    reports = UsageReport.objects.filter(
        customer=customer, reported_at__gte=raw_start, reported_at__lt=raw_end
    ).order_by("-reported_at", "-id")
    return UsageHistory(
        first_day=first_day,
        end_day=end_day,
        daily=daily,
        totals=metering.UsageTotals.combine(t for _, t in daily),
        reports=reports,
        report_count=raw.reports if raw else 0,
        instances=[
            _meters(
                i.instance_id,
                i.reports,
                i.last_reported_at,
                {"active_devices", "total_devices", *i.measured},
            )
            for i in (raw.instances if raw else [])
        ],
    )


def _max_devices_expression() -> Case:
    """The entitled plan's maxDevices in SQL, mirroring plans.entitled_plan."""
    whens = [
        When(
            subscription__status="trialing",
            then=Value(plans.PLANS[plans.PLAN_TRIAL].features.maxDevices),
        )
    ]
    whens += [
        When(
            subscription__status__in=plans.ENTITLED_STATUSES,
            subscription__plan=name,
            then=Value(plans.PLANS[name].features.maxDevices),
        )
        for name in plans.ASSIGNABLE_PLANS
    ]
    return Case(
        *whens,
        default=Value(plans.PLANS[plans.PLAN_UNLICENSED].features.maxDevices),
        output_field=IntegerField(),
    )


def customers_with_device_usage(*, now: datetime | None = None) -> QuerySet[CustomerUsage]:
    """Customers annotated with `current_devices` (the sum over instances of each one's
    latest active_devices, reported within metering.GAP_CAP), `max_devices` (entitled
    plan, -1 unlimited) and `over_device_limit`."""
    since = (now or timezone.now()) - metering.GAP_CAP
    newer = UsageReport.objects.filter(
        customer=OuterRef("customer"),
        instance_id=OuterRef("instance_id"),
        reported_at__gt=OuterRef("reported_at"),
    )
    current = (
        UsageReport.objects.filter(customer=OuterRef("pk"), reported_at__gte=since)
        .filter(~Exists(newer))
        .values("customer")
        .annotate(devices=Sum("active_devices"))
        .values("devices")
    )
    return (
        CustomerUsage.objects.select_related("subscription")
        .annotate(
            current_devices=Coalesce(Subquery(current, output_field=IntegerField()), 0),
            max_devices=_max_devices_expression(),
        )
        .annotate(
            over_device_limit=Case(
                When(
                    Q(max_devices__gte=0) & Q(current_devices__gt=F("max_devices")),
                    then=Value(True),
                ),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
    )
