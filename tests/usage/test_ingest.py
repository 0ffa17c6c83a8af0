"""POST /api/usage/report and /api/usage/report/batch: auth, validation, dedup, one insert."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from tests.usage.helpers import now_s, report_body
from usage.models import UsageReport

pytestmark = pytest.mark.django_db

GUIDE_BODY = {
    "instance_id": "prod-1",
    "active_devices": 42,
    "total_devices": 45,
    "mqtt_messages_published": 150000,
    "mqtt_messages_received": 120000,
    "mqtt_bytes_sent": 1500000,
    "mqtt_bytes_received": 1200000,
    "http_requests": 5000,
    "http_bytes_sent": 500000,
    "http_bytes_received": 300000,
    "postgres_size_mb": 125.5,
    "postgres_row_count": 500000,
}


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    return body


def test_report_guide_body_is_stored_with_server_time(instance):
    # given the guide's body exactly (no report_id, no reported_at)
    body = {"customer_id": instance.customer_id, **GUIDE_BODY}
    # when
    response = instance.client.post("/api/usage/report", body, format="json")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["duplicate"] is False
    row = UsageReport.objects.get()
    assert row.customer.customer_id == instance.customer_id
    assert (row.active_devices, row.mqtt_bytes_sent, str(row.postgres_size_mb)) == (
        42,
        1500000,
        "125.500",
    )
    assert row.report_id is None
    assert abs(row.reported_at - now_s()) < timedelta(seconds=5)
    assert row.reported_at.microsecond == 0


def test_report_retry_with_same_report_id_is_a_duplicate(instance):
    body = report_body(instance.customer_id, mqtt_bytes_sent=1000)
    first = instance.client.post("/api/usage/report", body, format="json")
    retry = instance.client.post("/api/usage/report", body, format="json")
    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert retry.json()["report_id"] == body["report_id"]
    assert UsageReport.objects.count() == 1


def test_report_retry_without_report_id_is_a_duplicate_by_instance_and_time(instance):
    at = now_s() - timedelta(minutes=3)
    body = report_body(instance.customer_id, at=at)
    del body["report_id"]
    assert instance.client.post("/api/usage/report", body, format="json").status_code == 201
    retry = instance.client.post("/api/usage/report", body, format="json")
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert UsageReport.objects.count() == 1


def test_report_id_of_another_customer_does_not_collide(make_instance):
    alice, bob = make_instance(), make_instance()
    shared_id = str(uuid.uuid4())
    assert alice.report(report_id=shared_id).status_code == 201
    assert bob.report(report_id=shared_id).status_code == 201
    assert UsageReport.objects.count() == 2


def test_report_is_one_insert_and_no_other_write(instance):
    instance.history()  # the key's first use refreshes its last_used_at; not our write
    body = report_body(instance.customer_id, active_devices=3)
    with CaptureQueriesContext(connection) as queries:
        response = instance.client.post("/api/usage/report", body, format="json")
    assert response.status_code == 201
    # the API key lookup reads; the only statement that writes is the one INSERT
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert len(writes) == 1, writes
    assert writes[0].startswith('INSERT INTO "usage_usagereport"')


def test_report_for_another_customer_is_403_and_not_stored(make_instance):
    alice, bob = make_instance(), make_instance()
    response = alice.client.post("/api/usage/report", report_body(bob.customer_id), format="json")
    body = assert_error(response, 403)
    assert body["details"] == {"customer_id": [bob.customer_id]}
    assert not UsageReport.objects.exists()


def test_report_needs_a_customer_key(instance, api_client, staff_client):
    body = report_body(instance.customer_id)
    assert_error(api_client.post("/api/usage/report", body, format="json"), 401)
    assert_error(staff_client.post("/api/usage/report", body, format="json"), 403)


def test_report_from_deactivated_customer_is_403(instance):
    Customer.objects.filter(customer_id=instance.customer_id).update(is_active=False)
    assert_error(instance.report(), 403)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("active_devices", -1),  # negative
        ("active_devices", 10**7),  # above the sane bound
        ("mqtt_bytes_sent", 10**16),  # above the sane bound
        ("mqtt_bytes_sent", "100"),  # a string, not a number
        ("http_requests", 1.5),  # not an integer
        ("http_requests", 2.0),  # a float even if whole
        ("http_bytes_received", True),  # a boolean
        ("postgres_size_mb", "125.5"),  # size as a string
        ("postgres_size_mb", -0.5),  # negative size
        ("postgres_size_mb", None),  # null
        ("reported_at", "yesterday"),  # not a timestamp
        ("reported_at", "future"),  # more than 5 minutes ahead
        ("reported_at", "too-old"),  # older than 35 days
        ("started_at", "future"),
        ("report_id", "not-a-uuid"),
        ("instance_id", "bad id!"),
        ("instance_id", "x" * 101),
        ("customer_id", 12),  # not a string
        ("surprise", 1),  # unknown field
        ("total_devices", "<missing>"),  # required field absent
    ],
)
def test_report_bad_input_is_400_naming_the_field(instance, field, value):
    body = report_body(instance.customer_id)
    if value == "<missing>":
        del body[field]
    elif value == "future":
        body[field] = (now_s() + timedelta(minutes=10)).isoformat()
    elif value == "too-old":
        body[field] = (now_s() - timedelta(days=36)).isoformat()
    else:
        body[field] = value
    response = instance.client.post("/api/usage/report", body, format="json")
    error = assert_error(response, 400)
    assert error["error"] == "Validation failed"
    assert field in error["details"]
    assert not UsageReport.objects.exists()


@pytest.mark.parametrize("payload", ['{"customer_id": ', "[1, 2]", '"report"', "NaN"])
def test_report_malformed_or_non_object_json_is_400(instance, payload):
    response = instance.client.post(
        "/api/usage/report", data=payload, content_type="application/json"
    )
    assert_error(response, 400)


def test_report_body_over_the_limit_is_413(instance):
    body = report_body(instance.customer_id, instance_id="a" * 20_000)
    response = instance.client.post("/api/usage/report", body, format="json")
    error = assert_error(response, 413)
    assert error["details"] == {"limit_bytes": 16 * 1024}


def test_batch_is_stored_with_one_multi_row_insert(instance):
    start = now_s() - timedelta(hours=5)
    reports = [
        report_body(instance.customer_id, at=start + timedelta(minutes=5 * i), http_requests=i)
        for i in range(50)
    ]
    with CaptureQueriesContext(connection) as queries:
        response = instance.batch(reports)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["received"], body["inserted"], body["duplicates"]) == (50, 50, 0)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert UsageReport.objects.count() == 50


def test_batch_retry_and_repeats_inside_a_batch_are_duplicates(instance):
    at = now_s() - timedelta(hours=1)
    first = report_body(instance.customer_id, at=at)
    second = report_body(instance.customer_id, at=at + timedelta(minutes=5))
    assert instance.batch([first]).json()["inserted"] == 1
    # a catch-up batch repeating `first`, and `second` twice
    response = instance.batch([first, second, second])
    body = response.json()
    assert (body["inserted"], body["duplicates"]) == (1, 2)
    assert [r["duplicate"] for r in body["results"]] == [True, False, True]
    assert UsageReport.objects.count() == 2


def test_batch_for_another_customer_is_403(make_instance):
    alice, bob = make_instance(), make_instance()
    reports = [report_body(alice.customer_id), report_body(bob.customer_id)]
    assert_error(alice.batch(reports), 403)
    assert not UsageReport.objects.exists()


def _without_reported_at(report: dict) -> dict:
    return {field: value for field, value in report.items() if field != "reported_at"}


@pytest.mark.parametrize(
    "batch_of",
    [
        pytest.param(lambda good: {"reports": []}, id="empty"),
        pytest.param(lambda good: {"reports": [good] * 501}, id="too-many"),
        pytest.param(
            lambda good: {"reports": [good, {**good, "active_devices": -5}]}, id="one-bad-item"
        ),
        pytest.param(
            lambda good: {"reports": [_without_reported_at(good)]}, id="item-without-reported-at"
        ),
        pytest.param(lambda good: {"reports": good}, id="not-a-list"),
        pytest.param(lambda good: {"reports": [good], "extra": True}, id="unknown-top-level-field"),
    ],
)
def test_batch_bad_input_is_400(instance, batch_of):
    # given a batch built around a valid report
    payload = batch_of(report_body(instance.customer_id))

    # when
    response = instance.client.post("/api/usage/report/batch", payload, format="json")

    # then refused as a whole
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "Validation failed"
    assert not UsageReport.objects.exists()


def test_batch_body_over_the_limit_is_413(instance, settings):
    reports = [report_body(instance.customer_id, instance_id="a" * 90)] * 3000
    response = instance.client.post(
        "/api/usage/report/batch",
        data=json.dumps({"reports": reports}),
        content_type="application/json",
    )
    assert response.status_code == 413


def test_usage_throttle_counts_a_batch_as_one_request(instance, make_instance, settings):
    settings.RATE_LIMIT_USAGE = "2/h"
    start = now_s() - timedelta(hours=2)
    batch = [report_body(instance.customer_id, at=start + timedelta(minutes=i)) for i in range(5)]
    assert instance.batch(batch).status_code == 200
    assert instance.report().status_code == 201
    throttled = instance.report()
    body = assert_error(throttled, 429)
    assert int(throttled["Retry-After"]) > 0
    assert body["details"]["retry_after"] > 0
    assert UsageReport.objects.count() == 6
    # per customer: another customer still reports
    assert make_instance().report().status_code == 201
