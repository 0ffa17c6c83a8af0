"""GET /metrics: Prometheus metrics, for staff only (a scraper uses a staff token).

Request metrics come from django-prometheus' middleware; the business gauges below are read
from the database at scrape time: what an operator pages on.

Each web process keeps its own request counters (Prometheus client, no multiprocess mode
here): with several gunicorn workers a scrape sees one process's counters. The business
gauges are the same from every process.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rest_framework.views import APIView

from config.health import worker_heartbeat_age
from customers.auth import IsStaff
from deployments.models import Deployment
from deployments.runs import queued_stale_after
from subscriptions.models import Refund, StripeEvent
from usage.models import UsageBillingRecord

# A refund pending this long was not completed by Stripe's answer nor by the reconcile task.
REFUND_PENDING_ALERT_AFTER = timedelta(minutes=10)
# The overage push runs every 15 minutes; twice that without progress means it is behind.
METER_PUSH_BEHIND_AFTER = timedelta(minutes=30)


GAUGES = {
    "billing_refunds_pending_too_long": "Refunds pending for more than 10 minutes.",
    "billing_stripe_events_failed": (
        "Stripe webhook events whose handler failed (replay them from the admin)."
    ),
    "billing_deployments_failed": "Deployments that failed for good.",
    "billing_deployments_queued_too_long": (
        "Deployments still queued well after they were due (the sweep republishes them)."
    ),
    "billing_meter_pushes_behind": (
        "Overage owed to Stripe Billing Meters and not pushed for 30 minutes."
    ),
    "billing_worker_heartbeat_age_seconds": (
        "Seconds since a worker last consumed the heartbeat task (-1: never)."
    ),
    "billing_worker_heartbeat_stale_after_seconds": (
        "The age at which workers count as not consuming."
    ),
}


class BusinessCollector(Collector):
    def describe(self):
        """The names alone, so registering queries nothing (collect runs at scrape time)."""
        return [GaugeMetricFamily(name, documentation) for name, documentation in GAUGES.items()]

    def collect(self):
        now = timezone.now()
        yield _gauge(
            "billing_refunds_pending_too_long",
            Refund.objects.filter(
                status=Refund.Status.PENDING, created_at__lt=now - REFUND_PENDING_ALERT_AFTER
            ).count(),
        )
        yield _gauge(
            "billing_stripe_events_failed",
            StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).count(),
        )
        yield _gauge(
            "billing_deployments_failed",
            Deployment.objects.filter(status=Deployment.Status.FAILED).count(),
        )
        yield _gauge(
            "billing_deployments_queued_too_long",
            Deployment.objects.filter(status=Deployment.Status.QUEUED)
            .filter(
                Q(retry_at__isnull=True, updated_at__lt=now - queued_stale_after())
                | Q(retry_at__lt=now - queued_stale_after())
            )
            .count(),
        )
        behind = now - METER_PUSH_BEHIND_AFTER
        yield _gauge(
            "billing_meter_pushes_behind",
            UsageBillingRecord.objects.filter(updated_at__lt=behind)
            .filter(
                Q(status=UsageBillingRecord.Status.IN_FLIGHT)
                | Q(amount_cents__gt=F("amount_cents_pushed"))
            )
            .count(),
        )
        age = worker_heartbeat_age()
        yield _gauge(
            "billing_worker_heartbeat_age_seconds",
            -1 if age is None else age,
        )
        yield _gauge(
            "billing_worker_heartbeat_stale_after_seconds",
            settings.WORKER_HEARTBEAT_STALE_SECONDS,
        )


def _gauge(name: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, GAUGES[name])
    gauge.add_metric([], value)
    return gauge


# Its own registry: the process-wide one is also what Flower (which loads Django) serves, and
# these gauges query the database, which Flower's event loop may not do.
BUSINESS_REGISTRY = CollectorRegistry(auto_describe=False)
BUSINESS_REGISTRY.register(BusinessCollector())


class MetricsView(APIView):
    """Staff only: `Authorization: Bearer <staff token or ADMIN_API_TOKEN>` or a staff session."""

    permission_classes = [IsStaff]

    @extend_schema(exclude=True)
    def get(self, request):
        # Prometheus' text format; refusals (401/403) stay in the JSON error shape.
        body = generate_latest(REGISTRY) + generate_latest(BUSINESS_REGISTRY)
        return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
