"""Reads of usage: history, consumption per billing period, device-limit flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    IntegerField,
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
from usage import metering
from usage.models import CustomerUsage, UsageDaily, UsageReport, UsageRollupCursor


def rolled_until() -> date | None:
    """Days before this are in UsageDaily; None before the first roll-up."""
    return UsageRollupCursor.objects.filter(id=1).values_list("rolled_until", flat=True).first()


def raw_points(
    *, customer_pk: int, start: datetime, end: datetime
) -> list[tuple[metering.Point, int]]:
    """The customer's raw reports in [start, end), oldest first, with their row ids."""
    reports = UsageReport.objects.filter(
        customer_id=customer_pk, reported_at__gte=start, reported_at__lt=end
    ).order_by("reported_at", "id")
    return [(metering.Point.of(r), r.pk) for r in reports]


def raw_predecessors(
    *, customer_pk: int, before: datetime
) -> dict[str, tuple[metering.Point, int]]:
    """The latest raw report of each of the customer's instances before `before`."""
    latest = (
        UsageReport.objects.filter(customer_id=customer_pk, reported_at__lt=before)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("instance_id")], order_by=F("reported_at").desc()
            )
        )
        .filter(rank=1)
    )
    return {r.instance_id: (metering.Point.of(r), r.pk) for r in latest}


def usage_days(
    *, customer: Customer, first_day: date, end_day: date
) -> dict[date, metering.UsageTotals]:
    """The customer's usage per UTC day in [first_day, end_day): rolled-up days from
    UsageDaily, later days computed from raw reports the same way."""
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
class UsageHistory:
    first_day: date
    end_day: date  # exclusive
    daily: list[tuple[date, metering.UsageTotals]]  # every day, oldest first
    totals: metering.UsageTotals
    reports: QuerySet[UsageReport]  # raw reports of the window still kept, newest first


def usage_history(*, customer: Customer, days: int, today: date | None = None) -> UsageHistory:
    """The last `days` UTC days up to and including today: a daily series, its totals, and
    the raw reports (those not yet rolled up)."""
    today = today or timezone.now().astimezone(UTC).date()
    first_day, end_day = today - timedelta(days=days - 1), today + timedelta(days=1)
    by_day = usage_days(customer=customer, first_day=first_day, end_day=end_day)
    daily = [
        (day, by_day.get(day, metering.UsageTotals()))
        for day in (first_day + timedelta(days=n) for n in range(days))
    ]
    raw_from = max(first_day, rolled_until() or first_day)
    reports = UsageReport.objects.filter(
        customer=customer,
        reported_at__gte=datetime.fromtimestamp(metering.day_start(raw_from), tz=UTC),
        reported_at__lt=datetime.fromtimestamp(metering.day_start(end_day), tz=UTC),
    ).order_by("-reported_at", "-id")
    return UsageHistory(
        first_day=first_day,
        end_day=end_day,
        daily=daily,
        totals=metering.UsageTotals.combine(t for _, t in daily),
        reports=reports,
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
