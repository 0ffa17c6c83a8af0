"""usage.metering: counter deltas, gauge integrals and peaks, overage per meter.

Every expected number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core.plans import PLANS
from usage import metering
from usage.metering import Point, UsageTotals

DAY = date(2026, 3, 10)
T0 = metering.day_start(DAY)  # 2026-03-10T00:00:00Z
H = 3600


def point(at: int, counters=(0,) * 7, instance="a", devices=0, storage_kb=0, started=None):
    return Point(
        instance_id=instance,
        at=at,
        counters=tuple(counters),
        active_devices=devices,
        total_devices=devices,
        storage_kb=storage_kb,
        started_at=started,
    )


def counters(mqtt_sent=0, http_requests=0):
    # COUNTER_FIELDS order: published, received, mqtt sent, mqtt received, requests, http sent, rcvd
    return (0, 0, mqtt_sent, 0, http_requests, 0, 0)


def one_day(points, predecessors=None, first=DAY, days=1):
    return metering.daily_usage(
        points=points,
        predecessors=predecessors or {},
        first_day=first,
        end_day=first + timedelta(days=days),
    )


def test_counter_deltas_first_report_counts_in_full():
    assert metering.counter_deltas(None, point(T0, counters(500))) == counters(500)


def test_counter_deltas_are_differences_of_cumulative_values():
    # 1500 - 1000 = 500 bytes, 70 - 20 = 50 requests
    previous, current = point(T0, counters(1000, 20)), point(T0 + 60, counters(1500, 70))
    assert metering.counter_deltas(previous, current) == counters(500, 50)


def test_counter_deltas_any_decrease_is_a_reset_of_all_counters():
    # the instance restarted: bytes fell 1000 -> 300, so requests 20 -> 25 count in full (25)
    previous, current = point(T0, counters(1000, 20)), point(T0 + 60, counters(300, 25))
    assert metering.counter_deltas(previous, current) == counters(300, 25)


def test_counter_deltas_new_started_at_is_a_reset():
    # counters grew past their old values after a restart: started_at tells
    previous = point(T0, counters(1000), started=T0 - H)
    current = point(T0 + 60, counters(1200), started=T0 + 30)
    assert metering.counter_deltas(previous, current) == counters(1200)


def test_daily_usage_missed_report_loses_nothing():
    # sent: 1000 at 00:00 and 6000 at 02:00; the 3000 at 01:00 never arrived
    with_gap = one_day([point(T0, counters(1000)), point(T0 + 2 * H, counters(6000))])
    everything = one_day(
        [
            point(T0, counters(1000)),
            point(T0 + H, counters(3000)),
            point(T0 + 2 * H, counters(6000)),
        ]
    )
    assert with_gap[DAY].mqtt_bytes_sent == everything[DAY].mqtt_bytes_sent == 6000


def test_daily_usage_order_of_arrival_does_not_matter():
    # a catch-up batch arrives after a later report: metering orders by reported_at
    points = [point(T0 + 2 * H, counters(6000)), point(T0, counters(1000))]
    assert one_day(points)[DAY].mqtt_bytes_sent == 6000


def test_daily_usage_device_hours_hold_until_next_report_capped_at_two_hours():
    # 10 devices 00:00-01:00 = 10 device-h; 20 devices 01:00-03:00 (next report at 06:00,
    # capped at 2 h) = 40; 5 devices 06:00-08:00 (no next report, capped) = 10 -> 60 device-h
    points = [point(T0, devices=10), point(T0 + H, devices=20), point(T0 + 6 * H, devices=5)]
    totals = one_day(points)[DAY]
    assert totals.device_seconds == 60 * H
    assert totals.device_hours == Decimal("60")
    assert totals.peak_active_devices == 20
    assert totals.report_count == 3


def test_daily_usage_splits_gauge_time_at_midnight_and_uses_the_predecessor():
    # 4 devices reported at 23:00 the day before: held 23:00-01:00, so 1 h on each day
    before = point(T0 - H, devices=4)
    days = one_day([], predecessors={"a": before}, first=DAY - timedelta(days=1), days=2)
    assert days[DAY - timedelta(days=1)].device_seconds == 4 * H
    assert days[DAY].device_seconds == 4 * H
    assert days[DAY].report_count == 0
    # the predecessor's counters were counted on its own day, not again here
    assert (
        one_day([point(T0 + H, counters(700))], predecessors={"a": point(T0 - H, counters(500))})[
            DAY
        ].mqtt_bytes_sent
        == 200
    )


def test_daily_usage_peak_is_of_the_sum_over_instances():
    # a: 6 devices from 00:00; b: 5 devices from 00:15 -> 11 together from 00:15
    # a's second report at 00:30 drops to 2 -> 7 together; device-h:
    # 00:00-00:15 6*0.25=1.5, 00:15-00:30 11*0.25=2.75, 00:30-02:15 7*1.75=12.25 (b to 02:15),
    # 02:15-02:30 2*0.25=0.5 (a to 02:30) -> 17 device-h
    points = [
        point(T0, devices=6, instance="a"),
        point(T0 + 900, devices=5, instance="b"),
        point(T0 + 1800, devices=2, instance="a"),
    ]
    totals = one_day(points)[DAY]
    assert totals.peak_active_devices == 11
    assert totals.device_hours == Decimal("17")


def test_daily_usage_storage_integral_and_peak():
    # 2,000 MB (2,000,000 kB) for 2 h, then 3,000 MB for 2 h -> 2e6*7200 + 3e6*7200 kB-s
    points = [point(T0, storage_kb=2_000_000), point(T0 + 2 * H, storage_kb=3_000_000)]
    totals = one_day(points)[DAY]
    assert totals.storage_kb_seconds == 36_000_000_000
    assert totals.peak_storage_mb == Decimal(3000)


def test_billing_period_is_the_subscriptions_while_active_else_calendar_month():
    start = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
    active = SimpleNamespace(
        status="active", current_period_start=start, current_period_end=start + timedelta(days=31)
    )
    period = metering.billing_period(subscription=active, at=start + timedelta(days=3))
    # metered in whole UTC days: 2026-03-05 up to (not including) 2026-04-05 = 31 days
    assert (period.source, period.first_day, period.end_day) == (
        "subscription",
        date(2026, 3, 5),
        date(2026, 4, 5),
    )
    assert period.seconds == 31 * 86_400
    trial = SimpleNamespace(status="trialing", current_period_start=None, current_period_end=None)
    month = metering.billing_period(subscription=trial, at=datetime(2026, 12, 20, tzinfo=UTC))
    assert (month.source, month.first_day, month.end_day) == (
        "calendar_month",
        date(2026, 12, 1),
        date(2027, 1, 1),
    )


PERIOD_30_DAYS = 30 * 86_400  # 2,592,000 s


def starter_example() -> UsageTotals:
    return UsageTotals(
        mqtt_bytes_sent=9 * 10**9,  # MQTT 9 + 3 = 12 GB
        mqtt_bytes_received=3 * 10**9,
        http_bytes_sent=2 * 10**9,  # HTTP 2 + 1 = 3 GB
        http_bytes_received=1 * 10**9,
        http_requests=250_000,
        # 8 GB (8,000,000 kB) held all 30 days: 8e6 * 2,592,000 kB-s = 8 GB-months
        storage_kb_seconds=8_000_000 * PERIOD_30_DAYS,
        peak_active_devices=13,
    )


def test_period_overage_worked_example_for_each_meter_on_starter():
    lines = metering.period_overage(
        usage=starter_example(), plan=PLANS["starter"], period_seconds=PERIOD_30_DAYS
    )
    # traffic: 12 + 3 = 15 GB against 10 GB shared -> 5 GB over, split by share of traffic:
    # MQTT 5 * 12/15 = 4 GB * $0.10 = $0.40; HTTP 5 * 3/15 = 1 GB * $0.15 = $0.15
    assert lines["mqtt_gb"].overage == Decimal(4)
    assert lines["mqtt_gb"].amount_cents == 40
    assert lines["http_gb"].overage == Decimal(1)
    assert lines["http_gb"].amount_cents == 15
    # API: 250,000 - 100,000 included = 150 thousand * $0.50 = $75.00
    assert lines["api_calls_thousands"].overage == Decimal(150)
    assert lines["api_calls_thousands"].amount_cents == 7500
    # storage: 8 GB-months - 5 included = 3 * $0.20 = $0.60
    assert lines["storage_gb_months"].used == Decimal(8)
    assert lines["storage_gb_months"].amount_cents == 60
    # devices: peak 13 - maxDevices 10 = 3 * $2.00 = $6.00
    assert lines["extra_devices"].overage == Decimal(3)
    assert lines["extra_devices"].amount_cents == 600
    # total 40 + 15 + 7500 + 60 + 600
    assert sum(line.amount_cents for line in lines.values()) == 8215


def test_period_overage_within_allowances_is_zero():
    usage = UsageTotals(
        mqtt_bytes_sent=6 * 10**9,  # 6 + 4 = 10 GB: exactly the allowance
        http_bytes_sent=4 * 10**9,
        http_requests=100_000,
        storage_kb_seconds=5_000_000 * PERIOD_30_DAYS,  # exactly 5 GB-months
        peak_active_devices=10,
    )
    lines = metering.period_overage(
        usage=usage, plan=PLANS["starter"], period_seconds=PERIOD_30_DAYS
    )
    assert {m: line.amount_cents for m, line in lines.items()} == dict.fromkeys(lines, 0)


def test_period_overage_rounds_half_a_cent_up_per_meter():
    # 100,010 calls: 10 over = 0.01 thousand * $0.50 = $0.005 = 0.5 cent -> 1 cent
    half = UsageTotals(http_requests=100_010)
    lines = metering.period_overage(usage=half, plan=PLANS["starter"], period_seconds=86_400)
    assert lines["api_calls_thousands"].amount_cents == 1
    # 100,009 calls: 9 over = $0.0045 = 0.45 cent -> 0 cents
    below = UsageTotals(http_requests=100_009)
    lines = metering.period_overage(usage=below, plan=PLANS["starter"], period_seconds=86_400)
    assert lines["api_calls_thousands"].amount_cents == 0


def test_period_overage_storage_is_averaged_over_the_period():
    # 20 GB for 6 of 30 days = 20 * 6/30 = 4 GB-months: under the 5 included
    usage = UsageTotals(storage_kb_seconds=20_000_000 * 6 * 86_400)
    lines = metering.period_overage(
        usage=usage, plan=PLANS["starter"], period_seconds=PERIOD_30_DAYS
    )
    assert lines["storage_gb_months"].used == Decimal(4)
    assert lines["storage_gb_months"].amount_cents == 0


def test_period_overage_unlimited_plan_has_none():
    usage = UsageTotals(
        mqtt_bytes_sent=10**15,
        http_requests=10**9,
        peak_active_devices=5000,
        storage_kb_seconds=10**18,
    )
    lines = metering.period_overage(usage=usage, plan=PLANS["enterprise"], period_seconds=86_400)
    assert all(line.allowance is None and line.amount_cents == 0 for line in lines.values())


def test_period_overage_without_any_traffic_splits_nothing():
    lines = metering.period_overage(
        usage=UsageTotals(), plan=PLANS["unlicensed"], period_seconds=86_400
    )
    assert lines["mqtt_gb"].amount_cents == lines["http_gb"].amount_cents == 0


@pytest.mark.parametrize(("usd", "expected"), [("0.004", 0), ("0.005", 1), ("1.995", 200)])
def test_cents_round_half_up(usd, expected):
    assert metering.cents(Decimal(usd)) == expected


def test_daily_usage_counts_gauge_time_only_up_to_now():
    # 6 devices reported at 10:00, asked at 10:30: 0.5 h so far, not the 2 h it may hold
    totals = metering.daily_usage(
        points=[point(T0 + 10 * H, devices=6)],
        predecessors={},
        first_day=DAY,
        end_day=DAY + timedelta(days=1),
        until=T0 + 10 * H + 1800,
    )[DAY]
    assert totals.device_hours == Decimal(3)
