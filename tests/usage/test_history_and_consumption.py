"""GET /api/usage/:id and /api/usage/:id/consumption, through the reporting API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import Subscription
from tests.usage.helpers import now_s, report_body

pytestmark = pytest.mark.django_db


def test_retried_report_is_counted_once(instance):
    # given a report sent, then sent again because its answer was lost
    t = now_s() - timedelta(hours=2)
    first = report_body(instance.customer_id, at=t, mqtt_bytes_sent=1000, http_requests=10)
    second = report_body(
        instance.customer_id, at=t + timedelta(minutes=30), mqtt_bytes_sent=2500, http_requests=40
    )
    for body in (first, first, second, first):  # the last retry arrives after a newer report
        instance.client.post("/api/usage/report", body, format="json")
    # then: cumulative 2500 bytes and 40 requests in all, counted once
    totals = instance.history()["totals"]
    assert (totals["reports"], totals["mqtt_bytes_sent"], totals["http_requests"]) == (2, 2500, 40)


def test_missed_report_loses_nothing(make_instance):
    # the same instance life seen by two customers: one got every report, one missed the middle
    t = now_s() - timedelta(hours=3)
    sent = [(t, 1000), (t + timedelta(hours=1), 3000), (t + timedelta(hours=2), 6000)]
    complete, lossy = make_instance(), make_instance()
    for at, value in sent:
        complete.report(at=at, mqtt_bytes_sent=value)
    for at, value in (sent[0], sent[2]):
        lossy.report(at=at, mqtt_bytes_sent=value)
    # 1000 + 2000 + 3000 = 6000 = 1000 + 5000
    assert complete.history()["totals"]["mqtt_bytes_sent"] == 6000
    assert lossy.history()["totals"]["mqtt_bytes_sent"] == 6000


def test_instance_restart_counts_the_new_run_in_full(instance):
    t = now_s() - timedelta(hours=2)
    instance.report(at=t, http_requests=900)
    # restart: the counter starts again from zero and reaches 150
    instance.report(at=t + timedelta(minutes=20), http_requests=150)
    assert instance.history()["totals"]["http_requests"] == 900 + 150


def test_history_has_reports_daily_series_and_totals(instance):
    t = now_s() - timedelta(minutes=30)
    instance.report(at=t, active_devices=4, total_devices=5, mqtt_bytes_sent=2 * 10**9)
    body = instance.history(days=7)
    assert body["customer_id"] == instance.customer_id
    assert len(body["daily"]) == 7
    assert body["daily"][-1]["date"] == body["to"]
    assert sum(day["reports"] for day in body["daily"]) == 1
    assert body["totals"]["mqtt_gb"] == "2.000000"
    assert body["totals"]["peak_active_devices"] == 4
    assert [r["active_devices"] for r in body["reports"]] == [4]
    assert body["pagination"]["total"] == 1


def test_history_pages_reports(instance):
    t = now_s() - timedelta(hours=1)
    for i in range(3):
        instance.report(at=t + timedelta(minutes=i))
    body = instance.history(limit=2, page=2)
    assert len(body["reports"]) == 1
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}


def test_history_is_for_staff_or_that_customer(make_instance, staff_client, api_client):
    alice, bob = make_instance(), make_instance()
    assert staff_client.get(f"/api/usage/{alice.customer_id}").status_code == 200
    assert bob.client.get(f"/api/usage/{alice.customer_id}").status_code == 404
    assert bob.client.get(f"/api/usage/{alice.customer_id}/consumption").status_code == 404
    assert api_client.get(f"/api/usage/{alice.customer_id}").status_code == 401
    assert staff_client.get("/api/usage/cust_doesnotexist").status_code == 404


@pytest.mark.parametrize("days", ["0", "367", "abc"])
def test_history_days_out_of_range_is_400(instance, days):
    response = instance.client.get(f"/api/usage/{instance.customer_id}", {"days": days})
    assert response.status_code == 400
    assert "days" in response.json()["details"]


def test_consumption_shows_overage_in_the_subscription_period(instance, staff_client, monkeypatch):
    # given a professional subscription (maxDevices 50, 100 GB, 1M calls) in its period,
    # and a clock that stands still: the live hour's gauges count up to now, so two reads
    # in different seconds would differ
    now = now_s()
    monkeypatch.setattr(timezone, "now", lambda: now)
    Subscription.objects.filter(customer__customer_id=instance.customer_id).update(
        plan="professional",
        status="active",
        current_period_start=now - timedelta(days=10),
        current_period_end=now + timedelta(days=20),
    )
    t = now - timedelta(hours=1)
    instance.report(at=t, active_devices=52, total_devices=55)
    instance.report(
        at=t + timedelta(minutes=10),
        active_devices=53,
        total_devices=55,
        http_requests=1_004_000,
        mqtt_bytes_sent=110 * 10**9,
    )
    # when
    body = staff_client.get(f"/api/usage/{instance.customer_id}/consumption").json()
    # then: 53 - 50 = 3 devices * $2 = 600; 1,004,000 - 1,000,000 = 4 thousand * $0.50 = 200;
    # MQTT 110 GB, no HTTP: 10 GB over, all MQTT, * $0.10 = 100
    assert body["plan"] == "professional"
    assert body["billable"] is True
    assert body["period"]["source"] == "subscription"
    assert body["overage"]["extra_devices"]["amount_cents"] == 600
    assert body["overage"]["api_calls_thousands"]["overage"] == "4.000000"
    assert body["overage"]["api_calls_thousands"]["amount_cents"] == 200
    assert body["overage"]["mqtt_gb"]["amount_cents"] == 100
    assert body["overage"]["http_gb"]["amount_cents"] == 0
    assert body["total_overage_cents"] == 900
    assert body["over_device_limit"] is True
    assert body["max_devices"] == 50
    assert instance.consumption() == body


def test_consumption_of_a_trial_is_not_billable(instance):
    body = instance.consumption()
    assert (body["plan"], body["billable"], body["period"]["source"]) == (
        "trial",
        False,
        "calendar_month",
    )
    assert body["total_overage_cents"] == 0
