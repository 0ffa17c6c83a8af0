"""GET /metrics: Prometheus text for staff only, with the gauges an operator pages on."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from config.celery import HEARTBEAT_CACHE_KEY
from deployments.models import Deployment
from subscriptions.models import StripeEvent
from tests.helpers import customer_client, staff_api_client

pytestmark = pytest.mark.django_db


def _metrics(client=None) -> dict[str, float]:
    response = (client or staff_api_client()).get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    values = {}
    for line in response.content.decode().splitlines():
        if match := re.match(r"^(billing_\w+) (\S+)$", line):
            values[match.group(1)] = float(match.group(2))
    return values


def test_metrics_refuse_anonymous_and_customer_keys(api_client, signup):
    assert api_client.get("/metrics").status_code == 401
    customer = signup()
    response = customer_client(customer.key).get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


def test_metrics_include_request_metrics_of_django_prometheus(api_client):
    api_client.get("/health/live")
    text = staff_api_client().get("/metrics").content.decode()
    assert "django_http_requests_total_by_method_total" in text


def test_business_gauges_count_what_needs_attention(signup):
    # given two failed webhook events, one failed and one long-lost deployment
    for n in range(2):
        StripeEvent.objects.create(stripe_event_id=f"evt_failed_{n}", type="invoice.paid",
                                   payload={}, status=StripeEvent.Status.FAILED)  # fmt: skip
    StripeEvent.objects.create(stripe_event_id="evt_ok", type="invoice.paid", payload={})
    failed = Deployment.objects.get(customer__customer_id=signup().id)
    lost = Deployment.objects.get(customer__customer_id=signup().id)
    Deployment.objects.filter(pk=failed.pk).update(status="failed")
    Deployment.objects.filter(pk=lost.pk).update(
        status="queued", updated_at=timezone.now() - timedelta(minutes=10)
    )
    cache.set(HEARTBEAT_CACHE_KEY, time.time() - 42, timeout=None)

    values = _metrics()

    assert values["billing_stripe_events_failed"] == 2
    assert values["billing_deployments_failed"] == 1
    assert values["billing_deployments_queued_too_long"] == 1
    assert values["billing_refunds_pending_too_long"] == 0
    assert values["billing_meter_pushes_behind"] == 0
    assert 41 <= values["billing_worker_heartbeat_age_seconds"] < 60
    assert values["billing_worker_heartbeat_stale_after_seconds"] == 180


def test_heartbeat_gauge_says_never_without_a_heartbeat():
    cache.delete(HEARTBEAT_CACHE_KEY)
    assert _metrics()["billing_worker_heartbeat_age_seconds"] == -1
