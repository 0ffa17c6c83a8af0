"""Writes of the usage app: report ingestion, the daily roll-up, metered-push bookkeeping."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import status

from core import plans
from core.errors import ApplicationError
from customers.models import Customer
from subscriptions import stripe_api
from usage import metering, partitions
from usage.db import prepared_cursor
from usage.models import (
    COUNTER_FIELDS,
    UsageBillingRecord,
    UsageDaily,
    UsageReport,
    UsageRollupCursor,
)
from usage.selectors import raw_points, raw_predecessors, usage_consumption

# A report may be this old (client clock) and still be accepted; Stripe meter events
# accept the same 35 days. Roll-up never touches a day that could still receive one.
MAX_REPORT_AGE = timedelta(days=35)
MAX_CLOCK_SKEW = timedelta(minutes=5)

logger = logging.getLogger(__name__)

_INSERT_FIELDS = (
    "customer",
    "instance_id",
    "report_id",
    "reported_at",
    "received_at",
    "started_at",
    "active_devices",
    "total_devices",
    *COUNTER_FIELDS,
    "postgres_size_mb",
    "postgres_row_count",
)


@dataclass(frozen=True)
class ReportOutcome:
    instance_id: str
    reported_at: datetime
    report_id: Any  # UUID | None
    duplicate: bool


def normalize_time(value: datetime) -> datetime:
    """Reports are kept in UTC to the whole second (what metering integrates over)."""
    return value.astimezone(UTC).replace(microsecond=0)


def _refuse_other_customer(customer: Customer, reports: Iterable[Mapping]) -> None:
    others = sorted({r["customer_id"] for r in reports} - {customer.customer_id})
    if others:
        raise ApplicationError(
            "This API key reports usage for its own customer only.",
            error="Forbidden",
            status_code=status.HTTP_403_FORBIDDEN,
            details={"customer_id": others},
        )


@functools.cache
def _postgresql_insert(*, single: bool, async_commit: bool) -> str:
    """The INSERT of `_insert_ignoring_duplicates` on PostgreSQL, built once per process
    (building it took a tenth of a single report's time).

    A batch is set-based: one array per column, unnest()ed into rows by the server, so the
    statement's size does not grow with the batch and values (already validated, of the
    columns' Python types) skip per-value preparation. A single report is one VALUES row
    (dumping 15 one-element arrays costs more than 15 values).
    """
    opts = UsageReport._meta
    model_fields = [cast(Field, opts.get_field(name)) for name in _INSERT_FIELDS]
    quote = connection.ops.quote_name
    table = quote(opts.db_table)
    names = ", ".join(quote(f.column) for f in model_fields)
    if single:
        values = ", ".join(f"%s::{f.db_type(connection)}" for f in model_fields)
        source = f"(VALUES ({values})) AS report({names})"
    else:
        arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in model_fields)
        source = f"unnest({arrays}) AS report({names})"
    commit = (
        ", (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
        if async_commit
        else ""
    )
    # A report_id stored in another month is a repeat too: on a partitioned table
    # (usage/partitions.py) (customer, report_id) is unique within a partition only.
    return (
        f"INSERT INTO {table} ({names}) "  # noqa: S608 - names from _meta
        f"SELECT report.* FROM {source}{commit} "
        f"WHERE report.report_id IS NULL OR NOT EXISTS (SELECT 1 FROM {table} AS stored "
        f"WHERE stored.customer_id = report.customer_id "
        f"AND stored.report_id = report.report_id) "
        f"ON CONFLICT DO NOTHING RETURNING {quote('instance_id')}, {quote('reported_at')}"
    )


def _insert_ignoring_duplicates(rows: Sequence[dict]) -> set[tuple[str, datetime]]:
    """One INSERT ... ON CONFLICT DO NOTHING of all rows (on PostgreSQL the statement of
    `_postgresql_insert`, elsewhere multi-row VALUES); the (instance_id, reported_at) of the rows
    actually inserted (a unique key of the customer's reports).

    Raw SQL because the ORM's bulk_create(ignore_conflicts=True) cannot tell which rows
    went in. PostgreSQL and SQLite >= 3.35 both speak this dialect.
    """
    opts = UsageReport._meta
    # Concrete columns only (no relations), so each is a Field with a column.
    model_fields = [cast(Field, opts.get_field(name)) for name in _INSERT_FIELDS]
    keys = [f.attname if f.attname in rows[0] else f.name for f in model_fields]
    if connection.vendor == "postgresql":
        # USAGE_ASYNC_COMMIT: this statement's own transaction commits without waiting for
        # the WAL flush (set_config(..., true) is local to it; one statement, no SET).
        async_commit = settings.USAGE_ASYNC_COMMIT and connection.get_autocommit()
        sql = _postgresql_insert(single=len(rows) == 1, async_commit=async_commit)
        if len(rows) == 1:
            params: list = [rows[0][key] for key in keys]
        else:
            params = [[row[key] for row in rows] for key in keys]
    else:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in model_fields)
        returning = f"RETURNING {quote('instance_id')}, {quote('reported_at')}"
        placeholders = "(" + ", ".join(["%s"] * len(model_fields)) + ")"
        params = [
            f.get_db_prep_save(row[key], connection)
            for row in rows
            for f, key in zip(model_fields, keys, strict=True)
        ]
        sql = (
            f"INSERT INTO {quote(opts.db_table)} ({columns}) VALUES "  # noqa: S608 - from _meta
            f"{', '.join([placeholders] * len(rows))} ON CONFLICT DO NOTHING {returning}"
        )
    with prepared_cursor() if len(rows) == 1 else connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    inserted = set()
    for instance_id, reported_at in returned:
        if isinstance(reported_at, str):  # SQLite hands back its text form, naive UTC
            reported_at = parse_datetime(reported_at)
        if timezone.is_naive(reported_at):
            reported_at = reported_at.replace(tzinfo=UTC)
        inserted.add((instance_id, normalize_time(reported_at)))
    return inserted


def _row(customer: Customer, report: Mapping, received_at: datetime) -> dict:
    row = {name: report.get(name) for name in _INSERT_FIELDS}  # absent: not measured (NULL)
    row.update(
        customer_id=customer.pk,
        report_id=report.get("report_id"),
        reported_at=normalize_time(report.get("reported_at") or received_at),
        received_at=received_at,
        started_at=normalize_time(report["started_at"]) if report.get("started_at") else None,
    )
    return row


def usage_reports_record(*, customer: Customer, reports: Sequence[Mapping]) -> list[ReportOutcome]:
    """Store validated reports with one INSERT; repeats of a stored report are skipped.

    A repeat is a report with a `report_id`, or an (`instance_id`, `reported_at`), that the
    customer already sent, including earlier in the same batch. Nothing else happens here:
    no aggregation, no Stripe, no task; metering reads the rows later.
    """
    _refuse_other_customer(customer, reports)
    received_at = normalize_time(timezone.now())
    rows, seen_ids, seen_times, outcomes = [], set(), set(), []
    for report in reports:
        row = _row(customer, report, received_at)
        key = (row["instance_id"], row["reported_at"])
        report_id = row["report_id"]
        repeat = key in seen_times or (report_id is not None and report_id in seen_ids)
        if not repeat:
            rows.append(row)
            seen_times.add(key)
            if row["report_id"] is not None:
                seen_ids.add(row["report_id"])
        outcomes.append((row, repeat))
    inserted = _insert_ignoring_duplicates(rows) if rows else set()
    return [
        ReportOutcome(
            instance_id=row["instance_id"],
            reported_at=row["reported_at"],
            report_id=row["report_id"],
            duplicate=repeat or (row["instance_id"], row["reported_at"]) not in inserted,
        )
        for row, repeat in outcomes
    ]


def usage_report_record(*, customer: Customer, report: Mapping) -> ReportOutcome:
    """Store one validated report (one INSERT); a repeat comes back with duplicate=True."""
    return usage_reports_record(customer=customer, reports=[report])[0]


# --------------------------------------------------------------------------- roll-up


def rollup_cutoff_day(now: datetime | None = None) -> date:
    """Days before this are rolled up: older than the retention, and too old to receive a
    report (so a rolled-up day never changes again)."""
    now = now or timezone.now()
    retention = max(
        settings.USAGE_RAW_RETENTION_DAYS,
        MAX_REPORT_AGE.days + 1,
    )
    return (now - timedelta(days=retention)).astimezone(UTC).date()


def _baseline_sources(
    customer_pk: int, baseline: metering.Point, rows: frozenset[int]
) -> tuple[frozenset[int], ...]:
    """Per counter, the row a baseline's value comes from (its newest row measuring it, as
    raw_predecessors carries it); none for a counter the baseline does not have."""
    if len(rows) == 1:
        return tuple(rows if value is not None else frozenset() for value in baseline.counters)
    found: list[frozenset[int]] = [frozenset()] * len(COUNTER_FIELDS)
    newest_first = (
        UsageReport.objects.filter(customer_id=customer_pk, pk__in=rows)
        .order_by("-reported_at", "-id")
        .values_list("pk", *COUNTER_FIELDS)
    )
    for pk, *counters in newest_first:
        for i, value in enumerate(counters):
            if value is not None and not found[i] and baseline.counters[i] is not None:
                found[i] = frozenset([pk])
    return tuple(found)


def _rollup_customer_day(customer_pk: int, day: date, *, delete: bool) -> UsageDaily | None:
    start = datetime.fromtimestamp(metering.day_start(day), tz=UTC)
    end = start + timedelta(days=1)
    points = raw_points(customer_pk=customer_pk, start=start, end=end)
    predecessors = raw_predecessors(customer_pk=customer_pk, before=start)
    days = metering.daily_usage(
        points=[p for p, _ in points],
        predecessors={k: p for k, (p, _) in predecessors.items()},
        first_day=day,
        end_day=day + timedelta(days=1),
    )
    # Keep each instance's baseline: its latest report, and the earlier ones whose counters
    # it carries (it left them out); the next delta and interval start there. `sources`
    # says, per counter, which rows the baseline's value comes from (the rows of a baseline
    # from before the day, as a whole), so reports in between that carry nothing go.
    anchors = {instance: rows for instance, (_, rows) in predecessors.items()}
    baselines = {instance: point for instance, (point, _) in predecessors.items()}
    sources = {
        instance: _baseline_sources(customer_pk, point, rows)
        for instance, (point, rows) in predecessors.items()
    }
    none: frozenset[int] = frozenset()
    for point, pk in points:  # in time order
        instance = point.instance_id
        baseline = metering.carry(baselines.get(instance), point)
        previous = sources.get(instance, (none,) * len(COUNTER_FIELDS))
        sources[instance] = tuple(
            frozenset([pk]) if value is not None else (before if carried is not None else none)
            for value, carried, before in zip(
                point.counters, baseline.counters, previous, strict=True
            )
        )
        anchors[instance] = frozenset([pk]).union(*sources[instance])
        baselines[instance] = baseline
    if delete:  # a partitioned table drops whole months instead (usage/partitions.py)
        UsageReport.objects.filter(customer_id=customer_pk, reported_at__lt=end).exclude(
            pk__in=[pk for rows in anchors.values() for pk in rows]
        ).delete()
    if day not in days:
        return None
    return UsageDaily(customer_id=customer_pk, day=day, **days[day].as_fields())


def usage_rollup(*, now: datetime | None = None, max_days: int = 400) -> int:
    """Roll raw reports of whole days before the cutoff into UsageDaily; returns the days done.

    Steps, one transaction per day with the cursor row locked (a second run waits, then
    finds the day done): compute each customer's day exactly as metering would from raw
    reports, write it, delete that day's raw reports except each instance's latest (on a
    partitioned table the month is dropped later instead: usage/partitions.py), move the
    cursor. Safe to run twice and to interrupt.
    """
    cutoff = rollup_cutoff_day(now)
    delete = not partitions.is_partitioned()
    first = UsageReport.objects.order_by("reported_at").values_list("reported_at", flat=True)
    earliest = first.first()
    initial = min(earliest.astimezone(UTC).date(), cutoff) if earliest else cutoff
    UsageRollupCursor.objects.get_or_create(id=1, defaults={"rolled_until": initial})
    done = 0
    while done < max_days:
        with transaction.atomic():
            cursor = UsageRollupCursor.objects.select_for_update().get(id=1)
            day = cursor.rolled_until
            if day >= cutoff:
                break
            start = datetime.fromtimestamp(metering.day_start(day), tz=UTC)
            candidates = (
                UsageReport.objects.filter(
                    reported_at__gte=start - metering.GAP_CAP,
                    reported_at__lt=start + timedelta(days=1),
                )
                .order_by()
                .values_list("customer_id", flat=True)
                .distinct()
            )
            rows = [_rollup_customer_day(pk, day, delete=delete) for pk in sorted(set(candidates))]
            UsageDaily.objects.bulk_create([row for row in rows if row is not None])
            cursor.rolled_until = day + timedelta(days=1)
            cursor.save(update_fields=["rolled_until", "updated_at"])
        done += 1
    return done


# --------------------------------------------------------------------------- metered push


@dataclass(frozen=True)
class PushIntent:
    """A meter event to send: Stripe must receive exactly `quantity` under `identifier`."""

    record: UsageBillingRecord
    identifier: str
    quantity: Decimal
    amount_cents: int


def usage_billing_records_sync(
    *,
    customer: Customer,
    period: metering.BillingPeriod,
    lines: Mapping[str, metering.MeterLine],
    plan: str = "",
) -> list[UsageBillingRecord]:
    """Record the latest computed overage of each meter for the period (idempotent), and the
    plan it was computed against."""
    records = []
    for meter, line in lines.items():
        quantity = line.overage.quantize(metering.QUANTITY_STEP)
        record, _ = UsageBillingRecord.objects.get_or_create(
            customer=customer,
            period_start=period.start,
            meter=meter,
            defaults={"period_end": period.end},
        )
        UsageBillingRecord.objects.filter(pk=record.pk).update(
            quantity=quantity,
            amount_cents=line.amount_cents,
            period_end=period.end,
            **({"plan": plan} if plan else {}),
        )
        record.refresh_from_db()
        records.append(record)
    return records


@transaction.atomic
def usage_billing_push_begin(*, record: UsageBillingRecord) -> PushIntent | None:
    """What to send to Stripe for this record now, saved as in flight first; None if
    nothing is owed. A record already in flight gets its same identifier and amount back."""
    record = (
        UsageBillingRecord.objects.select_for_update().select_related("customer").get(pk=record.pk)
    )
    if record.status != UsageBillingRecord.Status.IN_FLIGHT:
        quantity = record.quantity - record.quantity_pushed
        amount = record.amount_cents - record.amount_cents_pushed
        if quantity <= 0 and amount <= 0:
            return None
        record.identifier = record.next_identifier()
        record.in_flight_quantity = max(quantity, Decimal(0))
        record.in_flight_amount_cents = max(amount, 0)
        record.status = UsageBillingRecord.Status.IN_FLIGHT
    record.attempts += 1
    record.save()
    return PushIntent(
        record=record,
        identifier=record.identifier,
        quantity=record.in_flight_quantity,
        amount_cents=record.in_flight_amount_cents,
    )


@transaction.atomic
def usage_billing_push_confirm(*, record: UsageBillingRecord, identifier: str) -> bool:
    """Count the in-flight event `identifier` as pushed; False if it already was."""
    record = UsageBillingRecord.objects.select_for_update().get(pk=record.pk)
    if record.status != UsageBillingRecord.Status.IN_FLIGHT or record.identifier != identifier:
        return False
    record.quantity_pushed += record.in_flight_quantity
    record.amount_cents_pushed += record.in_flight_amount_cents
    record.in_flight_quantity, record.in_flight_amount_cents = Decimal(0), 0
    record.push_count += 1
    record.status = UsageBillingRecord.Status.PUSHED
    record.pushed_at = timezone.now()
    record.last_error = ""
    record.save()
    return True


@transaction.atomic
def usage_billing_push_fail(*, record: UsageBillingRecord, error: str) -> None:
    """Note why the in-flight event did not reach Stripe; the next push resends it as is."""
    UsageBillingRecord.objects.filter(pk=record.pk).update(
        last_error=error[:1000], updated_at=timezone.now()
    )


# --------------------------------------------------------------------------- push to Stripe

# Backoff after a 429 that the stripe library's own retries did not absorb: 1, 2, 4, 8, 16 s,
# then the run stops and the next one resumes (every in-flight event keeps its identifier).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
MAX_CONSECUTIVE_RATE_LIMITS = 5


class PushStopped(Exception):
    """Stripe is unavailable or keeps rate limiting: stop this run, the next one resumes."""


class StripePacer:
    """Spaces one push run's Stripe calls to at most `rate` per second and backs off on 429.

    Each 429 halves the rate for the rest of the run and sleeps an exponentially growing,
    bounded delay; after MAX_CONSECUTIVE_RATE_LIMITS in a row it gives up (PushStopped).
    """

    def __init__(self, rate: float, *, sleep=time.sleep, clock=time.monotonic) -> None:
        self.rate = max(float(rate), 0.1)
        self._sleep, self._clock = sleep, clock
        self._next = clock()
        self._rate_limited = 0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + 1 / self.rate

    def ok(self) -> None:
        self._rate_limited = 0

    def rate_limited(self) -> None:
        self._rate_limited += 1
        if self._rate_limited > MAX_CONSECUTIVE_RATE_LIMITS:
            raise PushStopped("Stripe keeps answering 429 (rate limited)")
        self.rate = max(self.rate / 2, 1.0)
        delay = BACKOFF_BASE_SECONDS * 2 ** (self._rate_limited - 1)
        self._sleep(min(delay, BACKOFF_MAX_SECONDS))


@dataclass
class PushStats:
    sent: int = 0  # meter events Stripe accepted
    duplicates: int = 0  # in-flight events Stripe already had (confirmed without a new event)
    zero: int = 0  # pushes worth no whole cent, confirmed without an event
    failed: int = 0  # refused by Stripe for good; left in flight with `last_error`

    def add(self, other: PushStats) -> None:
        for name in ("sent", "duplicates", "zero", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _event_timestamp(period_end: datetime, now: datetime) -> int:
    """When the meter event happened, as Stripe bills it: now inside the period; the
    period's last second while Stripe still holds that period's invoice as a draft (the
    finalization grace period), so late overage lands on its own period's invoice; after
    that, now (Stripe then bills it on the next invoice rather than not at all)."""
    grace = timedelta(seconds=settings.STRIPE_INVOICE_GRACE_SECONDS)
    if period_end <= now < period_end + grace:
        return int(period_end.timestamp()) - 1
    return int(now.timestamp())


def _push_record(
    *, record: UsageBillingRecord, stripe_customer_id: str, pacer: StripePacer, now: datetime
) -> PushStats:
    """begin → meter event → confirm for one record (see UsageBillingRecord)."""
    stats = PushStats()
    intent = usage_billing_push_begin(record=record)
    if intent is None:
        return stats
    if intent.amount_cents <= 0:
        usage_billing_push_confirm(record=record, identifier=intent.identifier)
        stats.zero += 1
        return stats
    while True:
        pacer.wait()
        try:
            stripe_api.meter_event_create(
                event_name=stripe_api.meter_event_name(record.meter),
                stripe_customer_id=stripe_customer_id,
                value=intent.amount_cents,
                identifier=intent.identifier,
                timestamp=_event_timestamp(record.period_end, now),
            )
        except stripe_api.StripeError as exc:
            if exc.code == "duplicate_meter_event":  # sent before; its reply was lost
                usage_billing_push_confirm(record=record, identifier=intent.identifier)
                stats.duplicates += 1
                return stats
            usage_billing_push_fail(record=record, error=f"{exc.http_status}: {exc.user_message}")
            if exc.http_status == 429:
                pacer.rate_limited()
                continue
            if exc.retryable:
                raise PushStopped(f"Stripe unavailable: {exc.user_message}") from exc
            logger.error("Meter event %s refused: %s", intent.identifier, exc.user_message)
            stats.failed += 1
            return stats
        pacer.ok()
        usage_billing_push_confirm(record=record, identifier=intent.identifier)
        stats.sent += 1
        return stats


def _periods_to_push(customer: Customer, now: datetime) -> list[tuple[metering.BillingPeriod, str]]:
    """(period, plan name or "" for the plan entitled now), oldest first: earlier periods
    that have records and could still receive reports (MAX_REPORT_AGE), then the current one.

    An ended period is recomputed once more on every run, so reports that arrive after the
    period rolled over are still pushed, against the plan its overage was computed with.
    """
    current = metering.billing_period(subscription=customer.subscription, at=now)
    earlier: dict[datetime, tuple[datetime, str]] = {}
    rows = (
        UsageBillingRecord.objects.filter(
            customer=customer,
            period_start__lt=current.start,
            period_end__gt=now - MAX_REPORT_AGE,
        )
        .order_by()
        .values_list("period_start", "period_end", "plan")
    )
    for start, end, plan in rows:
        earlier[start] = (end, plan or earlier.get(start, (end, ""))[1])
    periods = [
        (metering.BillingPeriod(start=start, end=end, source="subscription"), plan)
        for start, (end, plan) in sorted(earlier.items())
    ]
    return [*periods, (current, "")]


def usage_billing_push_customer(
    *, customer: Customer, pacer: StripePacer, now: datetime | None = None
) -> PushStats:
    """Push the customer's unbilled overage to Stripe's meters, each amount once.

    Steps, per period (earlier ones still open to late reports, then the current one):
    compute the consumption, record it (`usage_billing_records_sync`), then for each meter
    send what is owed beyond what was pushed as one meter event with a stable identifier.
    A crash at any point is safe to resume: an event in flight is resent with its
    identifier, and Stripe's `duplicate_meter_event` answer counts it as delivered.
    Raises PushStopped when Stripe is unavailable or keeps rate limiting.
    """
    now = now or timezone.now()
    stats = PushStats()
    for period, plan_name in _periods_to_push(customer, now):
        plan = plans.PLANS.get(plan_name) if plan_name else None
        result = usage_consumption(customer=customer, period=period, plan=plan)
        records = usage_billing_records_sync(
            customer=customer, period=period, lines=result.lines, plan=result.plan.name
        )
        for record in records:
            stats.add(
                _push_record(
                    record=record,
                    stripe_customer_id=customer.stripe_customer_id,
                    pacer=pacer,
                    now=now,
                )
            )
    return stats
