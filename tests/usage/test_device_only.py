"""Device-only reports (the guide's instances): every traffic counter and storage gauge is
optional. An absent counter is not measured (neither resets nor adds), an absent gauge holds
nothing, and the history says which meters each instance reports."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from core.timestamps import iso
from subscriptions.models import Subscription
from tests.usage.factories import UsageReportFactory
from tests.usage.helpers import COUNTERS, now_s, report_body
from usage import metering, selectors
from usage.metering import Point
from usage.models import OPTIONAL_FIELDS, UsageReport
from usage.services import usage_rollup

pytestmark = pytest.mark.django_db

H = 3600
DAY = datetime(2026, 3, 10, tzinfo=UTC).date()
NOT_MEASURED = (None,) * 7


def device_only(customer_id: str, **overrides) -> dict:
    body = report_body(customer_id, **overrides)
    for name in OPTIONAL_FIELDS:
        if name not in overrides:
            del body[name]
    return body


def mqtt(sent: int | None) -> tuple:
    # COUNTER_FIELDS order: published, received, mqtt sent, mqtt received, requests, http ...
    return (None, None, sent, None, None, None, None)


# --------------------------------------------------------------------------- the endpoint


def test_report_with_devices_only_is_stored_with_nothing_measured(instance):
    # given the guide's body of that era: devices, no traffic or storage
    body = {"customer_id": instance.customer_id, "instance_id": "edge-1", "active_devices": 7}
    body["total_devices"] = 9
    # when
    response = instance.client.post("/api/usage/report", body, format="json")
    # then stored, and every traffic and storage field is "not measured", not zero
    assert response.status_code == 201, response.content
    row = UsageReport.objects.get()
    assert (row.active_devices, row.total_devices) == (7, 9)
    assert all(getattr(row, name) is None for name in OPTIONAL_FIELDS)


@pytest.mark.parametrize("field", OPTIONAL_FIELDS)
def test_report_may_leave_out_any_one_traffic_or_storage_field(instance, field):
    body = report_body(instance.customer_id)
    del body[field]
    response = instance.client.post("/api/usage/report", body, format="json")
    assert response.status_code == 201, response.content
    assert getattr(UsageReport.objects.get(), field) is None


@pytest.mark.parametrize("field", ["customer_id", "instance_id", "active_devices"])
def test_report_still_needs_its_identity_and_devices(instance, field):
    body = device_only(instance.customer_id)
    del body[field]
    response = instance.client.post("/api/usage/report", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]


def test_batch_of_device_only_reports_is_stored(instance):
    start = now_s() - timedelta(hours=2)
    reports = [
        device_only(instance.customer_id, at=start + timedelta(minutes=5 * i), active_devices=i)
        for i in range(10)
    ]
    response = instance.batch(reports)
    assert response.status_code == 200, response.content
    assert response.json()["inserted"] == 10
    assert not UsageReport.objects.filter(mqtt_bytes_sent__isnull=False).exists()


def test_history_lists_reports_with_unmeasured_fields_as_null(instance):
    instance.client.post(
        "/api/usage/report", device_only(instance.customer_id, active_devices=3), format="json"
    )
    report = instance.history()["reports"][0]
    assert report["active_devices"] == 3
    assert all(report[name] is None for name in OPTIONAL_FIELDS)


# --------------------------------------------------------------------------- counting


def test_absent_counter_neither_resets_nor_adds(instance):
    # given 1000 bytes, then a report that does not measure MQTT, then 1500 bytes
    t = now_s() - timedelta(hours=2)
    instance.report(at=t, mqtt_bytes_sent=1000, http_requests=10)
    body = report_body(instance.customer_id, at=t + timedelta(minutes=10), http_requests=20)
    del body["mqtt_bytes_sent"]
    assert instance.client.post("/api/usage/report", body, format="json").status_code == 201
    instance.report(at=t + timedelta(minutes=20), mqtt_bytes_sent=1500, http_requests=30)
    # then MQTT counts 1500 in all: the gap added 0 and the next report is a delta of 500,
    # not a restart counted in full (which would make 2500)
    totals = instance.history()["totals"]
    assert (totals["mqtt_bytes_sent"], totals["http_requests"]) == (1500, 30)


def test_instance_that_never_measured_traffic_has_zero_traffic_and_pays_devices(make_instance):
    # given a paying professional customer (50 devices, 100 GB) with a device-only instance
    # over its device limit, and a second instance that measures traffic
    instance = make_instance(plan="professional", status="active")
    now = now_s()
    Subscription.objects.filter(customer__customer_id=instance.customer_id).update(
        current_period_start=now - timedelta(days=5), current_period_end=now + timedelta(days=25)
    )
    t = now - timedelta(hours=1)
    for minutes, devices in ((0, 50), (10, 53)):
        body = device_only(
            instance.customer_id, at=t + timedelta(minutes=minutes), active_devices=devices
        )
        instance.client.post("/api/usage/report", body, format="json")
    # when
    body = instance.consumption()
    # then no traffic, no API calls, no storage: only the 3 extra devices, $2 each
    usage = body["usage"]
    assert (usage["mqtt_gb"], usage["http_gb"], usage["api_calls"]) == ("0.000000",) * 2 + (0,)
    assert usage["storage_gb_months"] == "0.000000"
    assert {meter: line["amount_cents"] for meter, line in body["overage"].items()} == {
        "mqtt_gb": 0,
        "http_gb": 0,
        "storage_gb_months": 0,
        "api_calls_thousands": 0,
        "extra_devices": 600,
    }
    assert body["total_overage_cents"] == 600


def test_device_only_instance_adds_nothing_to_anothers_traffic(make_instance):
    instance = make_instance()
    t = now_s() - timedelta(hours=1)
    instance.report(at=t, instance_id="meters", mqtt_bytes_sent=3 * 10**9)
    instance.client.post(
        "/api/usage/report",
        device_only(instance.customer_id, at=t, instance_id="devices", active_devices=4),
        format="json",
    )
    totals = instance.history()["totals"]
    assert totals["mqtt_gb"] == "3.000000"
    assert totals["peak_active_devices"] == 4


def test_history_says_which_meters_each_instance_reports(instance):
    t = now_s() - timedelta(hours=1)
    instance.report(at=t, instance_id="full")
    instance.client.post(
        "/api/usage/report",
        device_only(instance.customer_id, at=t, instance_id="old-agent"),
        format="json",
    )
    storage_only = device_only(instance.customer_id, at=t, instance_id="db", postgres_size_mb=5)
    instance.client.post("/api/usage/report", storage_only, format="json")
    http_part = device_only(
        instance.customer_id, at=t + timedelta(minutes=5), instance_id="db", http_requests=3
    )
    instance.client.post("/api/usage/report", http_part, format="json")
    # when
    instances = {i["instance_id"]: i for i in instance.history()["instances"]}
    # then
    assert instances["full"]["meters"] == ["devices", "mqtt", "http", "storage"]
    assert instances["full"]["unmeasured"] == []
    assert instances["old-agent"]["meters"] == ["devices"]
    assert sorted(instances["old-agent"]["unmeasured"]) == sorted(OPTIONAL_FIELDS)
    assert instances["db"]["meters"] == ["devices", "http", "storage"]
    assert instances["db"]["reports"] == 2
    assert "http_requests" not in instances["db"]["unmeasured"]
    assert "postgres_row_count" in instances["db"]["unmeasured"]
    assert instances["db"]["last_reported_at"] == iso(t + timedelta(minutes=5))


# --------------------------------------------------------------------------- baselines


def test_baseline_before_the_window_carries_the_last_measured_counter(make_instance):
    # given, before the window: 1000 bytes, then a report that left MQTT out (the latest
    # before the window); in the window: 1600 bytes
    instance = make_instance()
    customer = instance.customer
    today = datetime.now(tz=UTC).date()
    window_start = datetime.combine(today, time.min, tzinfo=UTC)
    UsageReportFactory(
        customer=customer, reported_at=window_start - timedelta(hours=3), mqtt_bytes_sent=1000
    )
    UsageReportFactory(
        customer=customer,
        reported_at=window_start - timedelta(hours=1),
        **dict.fromkeys(OPTIONAL_FIELDS),
    )
    UsageReportFactory(
        customer=customer,
        reported_at=min(window_start + timedelta(minutes=1), now_s()),
        mqtt_bytes_sent=1600,
    )
    # when the window is today only
    totals = selectors.usage_history(customer=customer, days=1).totals
    # then today adds 600, the delta from the last measured value
    assert totals.mqtt_bytes_sent == 600


def test_baseline_is_not_carried_across_a_restart(make_instance):
    instance = make_instance()
    customer = instance.customer
    today = datetime.now(tz=UTC).date()
    window_start = datetime.combine(today, time.min, tzinfo=UTC)
    first_run, second_run = window_start - timedelta(days=1), window_start - timedelta(hours=2)
    UsageReportFactory(
        customer=customer,
        reported_at=window_start - timedelta(hours=3),
        started_at=first_run,
        mqtt_bytes_sent=5000,
    )
    UsageReportFactory(
        customer=customer,
        reported_at=window_start - timedelta(hours=1),
        started_at=second_run,
        **dict.fromkeys(OPTIONAL_FIELDS),
    )
    UsageReportFactory(
        customer=customer,
        reported_at=min(window_start + timedelta(minutes=1), now_s()),
        started_at=second_run,
        mqtt_bytes_sent=700,
    )
    # the instance restarted after its 5000: its 700 since then count in full
    assert selectors.usage_history(customer=customer, days=1).totals.mqtt_bytes_sent == 700


def test_rollup_keeps_the_rows_a_baseline_carries(make_instance, settings):
    # given an old measured report, then old device-only reports, all to be rolled up
    settings.USAGE_RAW_RETENTION_DAYS = 40
    customer = make_instance().customer
    # early in a UTC day, so the four old reports fall on one day whatever the clock says
    old = (now_s() - timedelta(days=45)).replace(hour=1, minute=0, second=0)
    UsageReportFactory(customer=customer, reported_at=old, mqtt_bytes_sent=1000)
    for hours in (1, 2, 3):
        UsageReportFactory(
            customer=customer,
            reported_at=old + timedelta(hours=hours),
            **dict.fromkeys(OPTIONAL_FIELDS),
        )
    UsageReportFactory(customer=customer, reported_at=now_s() - timedelta(minutes=5))
    recent = UsageReport.objects.latest("reported_at")
    UsageReport.objects.filter(pk=recent.pk).update(mqtt_bytes_sent=1800)
    before = selectors.usage_history(customer=customer, days=60).totals.mqtt_bytes_sent
    # when
    usage_rollup()
    # then the measured row stays (the device-only ones between it and the newest go), and
    # the recent report still adds 800
    kept = set(UsageReport.objects.values_list("reported_at", flat=True))
    assert old in kept
    assert old + timedelta(hours=1) not in kept
    assert old + timedelta(hours=3) in kept
    after = selectors.usage_history(customer=customer, days=60)
    assert before == after.totals.mqtt_bytes_sent == 1800
    days = selectors.usage_days(
        customer=customer, first_day=now_s().date(), end_day=now_s().date() + timedelta(days=1)
    )
    assert sum(day.mqtt_bytes_sent for day in days.values()) == 800


# --------------------------------------------------------------------------- metering


def test_counter_deltas_absent_counter_adds_nothing():
    previous = Point(instance_id="a", at=0, counters=mqtt(1000))
    current = Point(instance_id="a", at=60, counters=NOT_MEASURED)
    assert metering.counter_deltas(previous, current) == (0,) * 7


def test_counter_deltas_first_measurement_counts_in_full():
    previous = Point(instance_id="a", at=0, counters=NOT_MEASURED)
    assert metering.counter_deltas(previous, Point("a", 60, mqtt(400)))[2] == 400


def test_carry_keeps_the_last_measured_value_until_a_restart():
    measured = Point("a", 0, mqtt(1000), started_at=-100)
    gap = Point("a", 60, NOT_MEASURED, started_at=-100)
    assert metering.carry(measured, gap).counters == mqtt(1000)
    restarted = Point("a", 120, NOT_MEASURED, started_at=100)
    assert metering.carry(measured, restarted).counters == NOT_MEASURED


def test_absent_storage_gauge_holds_nothing():
    # 100 MB at 00:00; at 00:30 a report without storage; at 01:00 storage again 100 MB
    t0 = metering.day_start(DAY)
    points = [
        Point("a", t0, NOT_MEASURED, storage_kb=100_000),
        Point("a", t0 + 1800, NOT_MEASURED, storage_kb=0),
        Point("a", t0 + H, NOT_MEASURED, storage_kb=100_000),
    ]
    day = metering.daily_usage(
        points=points,
        predecessors={},
        first_day=DAY,
        end_day=DAY + timedelta(days=1),
    )[DAY]
    # 100,000 kB held 30 min, nothing 30 min, then 100,000 kB for the 2-hour cap
    assert day.storage_kb_seconds == 100_000 * 1800 + 100_000 * 2 * H
    assert day.peak_storage_kb == 100_000
    assert day.mqtt_bytes_sent == 0


def test_report_helper_fields_are_the_optional_ones():
    # the guide's counters are exactly the optional counters (a guard for the tables above)
    assert set(COUNTERS) | {"postgres_size_mb", "postgres_row_count"} == set(OPTIONAL_FIELDS)
