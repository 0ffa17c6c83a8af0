"""Consumption from usage reports, and overage against the plan: pure functions, no queries.

Rules (written for people in the README, "Usage reporting" and "Consumption billing"):

- Counters are cumulative per instance. A report's delta is its value minus the previous
  report's (by `reported_at`) of the same instance; the first report of an instance, and a
  report after a reset (any counter lower than before, or a different `started_at`),
  counts in full. A delta belongs to the UTC day of the report that carries it.
- A counter may be absent (None: not measured by the instance). It adds nothing and resets
  nothing: the next report that measures it is compared with the last one that did (the
  instance's *baseline*, `carry`). An instance that never measured traffic has none.
- Gauges hold from their report until the instance's next report, at most GAP_CAP: a
  silent instance does not invent device-hours or storage. An absent storage gauge holds
  nothing (zero until the next report). The customer's gauge is the sum over its
  instances; peaks and integrals are of that sum, split at UTC midnights.
- Units are decimal: GB = 10^9 bytes, MB = 10^6 bytes (`postgres_size_mb`), kB = 10^3.
- A billing period is metered in whole UTC days: [day of start, day of end).
- Overage per meter, in integer cents, rounded ROUND_HALF_UP once per meter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from core import plans
from usage.models import COUNTER_FIELDS

GAP_CAP = timedelta(hours=2)
BYTES_PER_GB = Decimal(10**9)
KB_PER_GB = Decimal(10**6)
KB_PER_MB = 1000
SECONDS_PER_DAY = 86_400
QUANTITY_STEP = Decimal("0.000001")


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def day_start(day: date) -> int:
    """Epoch seconds of 00:00 UTC on `day`."""
    return _epoch(datetime.combine(day, time.min, tzinfo=UTC))


def utc_day(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, tz=UTC).date()


@dataclass(frozen=True)
class Point:
    """One report as metering sees it; times are epoch seconds (UTC)."""

    instance_id: str
    at: int
    counters: tuple[int | None, ...]  # in COUNTER_FIELDS order; None: not measured
    active_devices: int = 0
    total_devices: int = 0
    storage_kb: int = 0
    started_at: int | None = None

    @classmethod
    def of(cls, report) -> Point:
        """From a UsageReport (or anything with its attributes)."""
        return cls(
            instance_id=report.instance_id,
            at=_epoch(report.reported_at),
            counters=tuple(
                None if (value := getattr(report, name)) is None else int(value)
                for name in COUNTER_FIELDS
            ),
            active_devices=report.active_devices,
            total_devices=report.total_devices,
            storage_kb=0
            if report.postgres_size_mb is None
            else int(Decimal(report.postgres_size_mb) * KB_PER_MB),
            started_at=_epoch(report.started_at) if report.started_at else None,
        )


SUM_FIELDS = ("report_count", *COUNTER_FIELDS, "device_seconds", "storage_kb_seconds")
PEAK_FIELDS = ("peak_active_devices", "peak_total_devices", "peak_storage_kb")


@dataclass
class UsageTotals:
    """Usage over a day or a span of days: sums of deltas and integrals, peaks of gauges.

    The fields are exactly UsageDaily's, so a rolled-up day and a day computed from raw
    reports are interchangeable.
    """

    report_count: int = 0
    mqtt_messages_published: int = 0
    mqtt_messages_received: int = 0
    mqtt_bytes_sent: int = 0
    mqtt_bytes_received: int = 0
    http_requests: int = 0
    http_bytes_sent: int = 0
    http_bytes_received: int = 0
    device_seconds: int = 0
    storage_kb_seconds: int = 0
    peak_active_devices: int = 0
    peak_total_devices: int = 0
    peak_storage_kb: int = 0

    @classmethod
    def of(cls, row) -> UsageTotals:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @classmethod
    def combine(cls, parts: Iterable[UsageTotals]) -> UsageTotals:
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def add(self, other: UsageTotals) -> None:
        for name in SUM_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in PEAK_FIELDS:
            setattr(self, name, max(getattr(self, name), getattr(other, name)))

    def as_fields(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def mqtt_bytes(self) -> int:
        return self.mqtt_bytes_sent + self.mqtt_bytes_received

    @property
    def http_bytes(self) -> int:
        return self.http_bytes_sent + self.http_bytes_received

    @property
    def api_calls(self) -> int:
        return self.http_requests

    @property
    def device_hours(self) -> Decimal:
        return (Decimal(self.device_seconds) / 3600).quantize(QUANTITY_STEP, ROUND_HALF_UP)

    @property
    def peak_storage_mb(self) -> Decimal:
        return Decimal(self.peak_storage_kb) / KB_PER_MB

    def storage_gb_months(self, period_seconds: int) -> Decimal:
        """Storage integral over the period, divided by the period's length."""
        with localcontext() as ctx:
            ctx.prec = 40
            return Decimal(self.storage_kb_seconds) / KB_PER_GB / period_seconds


def _restarted(previous: Point, current: Point) -> bool:
    """A reset: a different `started_at`, or any counter measured in both lower than before."""
    if (
        current.started_at is not None
        and previous.started_at is not None
        and current.started_at != previous.started_at
    ):
        return True
    return any(
        c is not None and p is not None and c < p
        for c, p in zip(current.counters, previous.counters, strict=True)
    )


def counter_deltas(previous: Point | None, current: Point) -> tuple[int, ...]:
    """What `current` adds: its counters minus the previous report's (the baseline, see
    `carry`), or all of them after a reset. Any decrease resets every counter (a restart
    zeroes them all). A counter `current` does not measure adds 0; one the baseline never
    measured counts in full."""
    if previous is None or _restarted(previous, current):
        return tuple(c or 0 for c in current.counters)
    return tuple(
        0 if c is None else c if p is None else c - p
        for c, p in zip(current.counters, previous.counters, strict=True)
    )


def carry(previous: Point | None, current: Point) -> Point:
    """The baseline after `current`: its own values, and for each counter it did not
    measure the last measured value (none after a reset: the counter restarted at zero)."""
    if previous is None or all(c is not None for c in current.counters):
        return current
    restarted = _restarted(previous, current)
    counters = tuple(
        c if c is not None or restarted else p
        for c, p in zip(current.counters, previous.counters, strict=True)
    )
    return replace(current, counters=counters)


def daily_usage(
    *,
    points: Iterable[Point],
    predecessors: Mapping[str, Point],
    first_day: date,
    end_day: date,
    until: int | None = None,
) -> dict[date, UsageTotals]:
    """Usage per UTC day in [first_day, end_day) of one customer.

    `points` are the customer's reports inside the window; `predecessors` the baseline of
    each instance before it (its latest report, carrying the last measured value of each
    counter that report left out: what the first delta and interval start from).
    Gauge time is counted up to `until` (epoch seconds, e.g. now), never into the future.
    Days with neither reports nor gauge time are left out.
    """
    window_start, window_end = day_start(first_day), day_start(end_day)
    gauge_end = window_end if until is None else max(window_start, min(window_end, until))
    by_instance: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        if window_start <= point.at < window_end:
            by_instance[point.instance_id].append(point)
    days: dict[date, UsageTotals] = {}

    def day_of(epoch: int) -> UsageTotals:
        return days.setdefault(utc_day(epoch), UsageTotals())

    # Held gauge values per instance: (start, end, active, total, storage_kb).
    segments: list[tuple[int, int, int, int, int]] = []
    for instance_id in set(by_instance) | set(predecessors):
        reports = sorted(by_instance.get(instance_id, ()), key=lambda p: p.at)
        previous = predecessors.get(instance_id)
        for point in reports:
            totals = day_of(point.at)
            totals.report_count += 1
            for name, delta in zip(COUNTER_FIELDS, counter_deltas(previous, point), strict=True):
                setattr(totals, name, getattr(totals, name) + delta)
            previous = carry(previous, point)
        chain = ([predecessors[instance_id]] if instance_id in predecessors else []) + reports
        cap = int(GAP_CAP.total_seconds())
        for index, point in enumerate(chain):
            end = point.at + cap
            if index + 1 < len(chain):
                end = min(end, chain[index + 1].at)
            start, end = max(point.at, window_start), min(end, gauge_end)
            if start < end:
                segments.append(
                    (start, end, point.active_devices, point.total_devices, point.storage_kb)
                )

    changes: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for start, end, *values in segments:
        for i, value in enumerate(values):
            changes[start][i] += value
            changes[end][i] -= value
    breakpoints = set(changes)
    breakpoints.update(
        day_start(first_day + timedelta(days=n)) for n in range((end_day - first_day).days + 1)
    )
    ordered = sorted(b for b in breakpoints if window_start <= b <= window_end)
    current = [0, 0, 0]
    for here, following in zip(ordered, ordered[1:], strict=False):
        current = [c + d for c, d in zip(current, changes.get(here, (0, 0, 0)), strict=True)]
        active, total, storage_kb = current
        if not any(current):
            continue
        totals = day_of(here)
        seconds = following - here
        totals.device_seconds += active * seconds
        totals.storage_kb_seconds += storage_kb * seconds
        totals.peak_active_devices = max(totals.peak_active_devices, active)
        totals.peak_total_devices = max(totals.peak_total_devices, total)
        totals.peak_storage_kb = max(totals.peak_storage_kb, storage_kb)
    return days


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class BillingPeriod:
    """A billing period and the whole UTC days it is metered over."""

    start: datetime
    end: datetime
    source: str  # "subscription" or "calendar_month"

    @property
    def first_day(self) -> date:
        return self.start.astimezone(UTC).date()

    @property
    def end_day(self) -> date:
        """Exclusive. The next period's first day, so periods neither overlap nor leave gaps."""
        return max(self.end.astimezone(UTC).date(), self.first_day + timedelta(days=1))

    @property
    def seconds(self) -> int:
        return (self.end_day - self.first_day).days * SECONDS_PER_DAY


def calendar_month(at: datetime) -> BillingPeriod:
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return BillingPeriod(start=start, end=end, source="calendar_month")


def billing_period(*, subscription, at: datetime) -> BillingPeriod:
    """The subscription's current period while it is active or past due, else the
    calendar month (UTC) of `at`."""
    if (
        subscription is not None
        and subscription.status in plans.ENTITLED_STATUSES
        and subscription.current_period_start
        and subscription.current_period_end
    ):
        return BillingPeriod(
            start=subscription.current_period_start,
            end=subscription.current_period_end,
            source="subscription",
        )
    return calendar_month(at)


# --------------------------------------------------------------------------- overage

METER_UNITS = {
    "mqtt_gb": ("GB", plans.OVERAGE_MQTT_PER_GB),
    "http_gb": ("GB", plans.OVERAGE_HTTP_PER_GB),
    "storage_gb_months": ("GB-month", plans.OVERAGE_STORAGE_PER_GB_MONTH),
    "api_calls_thousands": ("1,000 calls", plans.OVERAGE_API_PER_1000_CALLS),
    "extra_devices": ("device-month", plans.OVERAGE_DEVICE_PER_MONTH),
}


def cents(amount_usd: Decimal) -> int:
    """USD to integer cents, half a cent rounded up."""
    return int((amount_usd * 100).quantize(Decimal(1), ROUND_HALF_UP))


@dataclass(frozen=True)
class MeterLine:
    """One meter of a period. `used`, `allowance` and `overage` are in the meter's unit;
    `allowance` is None when unlimited (for MQTT and HTTP it is their shared allowance)."""

    meter: str
    unit: str
    used: Decimal
    allowance: Decimal | None
    overage: Decimal
    unit_price: Decimal
    amount_cents: int

    def as_dict(self) -> dict:
        return {
            "unit": self.unit,
            "used": str(self.used.quantize(QUANTITY_STEP, ROUND_HALF_UP)),
            "allowance": None if self.allowance is None else str(self.allowance),
            "overage": str(self.overage.quantize(QUANTITY_STEP, ROUND_HALF_UP)),
            "unit_price": str(self.unit_price),
            "amount_cents": self.amount_cents,
        }


def _line(meter: str, used: Decimal, allowance: Decimal | None, overage: Decimal) -> MeterLine:
    unit, price = METER_UNITS[meter]
    return MeterLine(
        meter=meter,
        unit=unit,
        used=used,
        allowance=allowance,
        overage=overage,
        unit_price=price,
        amount_cents=cents(overage * price),
    )


def _allowance(value: int) -> Decimal | None:
    return None if value < 0 else Decimal(value)


def period_overage(
    *, usage: UsageTotals, plan: plans.Plan, period_seconds: int
) -> dict[str, MeterLine]:
    """Overage quantity and amount per meter of one customer's billing period.

    The plan's traffic allowance covers MQTT and HTTP together; what exceeds it is split
    between them in proportion to their traffic (so neither order of use matters).
    Devices: peak active devices above maxDevices, each a device-month. Storage: GB-months
    above the included GB. API calls: HTTP requests above the included calls.
    """
    with localcontext() as ctx:
        ctx.prec = 40
        mqtt_gb = Decimal(usage.mqtt_bytes) / BYTES_PER_GB
        http_gb = Decimal(usage.http_bytes) / BYTES_PER_GB
        traffic = _allowance(plan.included_traffic_gb)
        mqtt_over = http_over = Decimal(0)
        if traffic is not None and mqtt_gb + http_gb > traffic:
            excess = mqtt_gb + http_gb - traffic
            mqtt_over = excess * mqtt_gb / (mqtt_gb + http_gb)
            http_over = excess - mqtt_over

        def over(used: Decimal, allowance: Decimal | None) -> Decimal:
            return Decimal(0) if allowance is None else max(Decimal(0), used - allowance)

        storage = usage.storage_gb_months(period_seconds)
        storage_allowance = _allowance(plan.included_storage_gb)
        api = Decimal(usage.api_calls) / 1000
        api_allowance = _allowance(plan.included_api_calls)
        if api_allowance is not None:
            api_allowance /= 1000
        devices = Decimal(usage.peak_active_devices)
        device_allowance = _allowance(plan.features.maxDevices)
        return {
            "mqtt_gb": _line("mqtt_gb", mqtt_gb, traffic, mqtt_over),
            "http_gb": _line("http_gb", http_gb, traffic, http_over),
            "storage_gb_months": _line(
                "storage_gb_months", storage, storage_allowance, over(storage, storage_allowance)
            ),
            "api_calls_thousands": _line(
                "api_calls_thousands", api, api_allowance, over(api, api_allowance)
            ),
            "extra_devices": _line(
                "extra_devices", devices, device_allowance, over(devices, device_allowance)
            ),
        }


@dataclass(frozen=True)
class Consumption:
    """A customer's consumption in one billing period, with overage per meter."""

    customer_id: str
    plan: plans.Plan
    subscription_status: str | None
    period: BillingPeriod
    usage: UsageTotals
    lines: dict[str, MeterLine] = field(default_factory=dict)

    @property
    def billable(self) -> bool:
        """Overage is charged only under an active or past-due paid subscription."""
        return self.subscription_status in plans.ENTITLED_STATUSES

    @property
    def max_devices(self) -> int:
        return self.plan.features.maxDevices

    @property
    def over_device_limit(self) -> bool:
        return 0 <= self.max_devices < self.usage.peak_active_devices

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines.values())


def consumption(
    *,
    customer_id: str,
    subscription,
    period: BillingPeriod,
    days: Iterable[UsageTotals],
    plan: plans.Plan | None = None,
) -> Consumption:
    """Consumption of a period from its days' usage; the plan defaults to the entitled one
    now (it applies to the whole period: allowances are not prorated)."""
    if plan is None:
        plan = (
            plans.entitled_plan(plan=subscription.plan, status=subscription.status)
            if subscription is not None
            else plans.PLANS[plans.PLAN_UNLICENSED]
        )
    usage = UsageTotals.combine(days)
    return Consumption(
        customer_id=customer_id,
        plan=plan,
        subscription_status=getattr(subscription, "status", None),
        period=period,
        usage=usage,
        lines=period_overage(usage=usage, plan=plan, period_seconds=period.seconds),
    )
