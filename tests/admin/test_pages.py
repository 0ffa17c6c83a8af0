"""What the customer page and the admin index show (the browser test draws them too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from customers.models import Customer
from deployments.models import Deployment
from subscriptions.admin import mrr_trend
from subscriptions.models import StripeEvent, Subscription
from tests.admin.helpers import customer_url
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def _paid(plan: str, *, since: datetime, canceled_at: datetime | None = None) -> Subscription:
    subscription = SubscriptionFactory(
        plan=plan,
        status="canceled" if canceled_at else "active",
        stripe_subscription_id=f"sub_{plan}_{since:%m%d}",
        canceled_at=canceled_at,
    )
    Subscription.objects.filter(pk=subscription.pk).update(created_at=since)
    return subscription


def test_mrr_trend_counts_each_paid_subscription_while_it_ran():
    now = datetime(2026, 12, 15, tzinfo=UTC)
    _paid("starter", since=datetime(2026, 3, 10, tzinfo=UTC))  # 2900 from March on
    _paid(
        "professional",
        since=datetime(2026, 6, 2, tzinfo=UTC),
        canceled_at=datetime(2026, 9, 20, tzinfo=UTC),
    )  # 9900 June to August
    SubscriptionFactory(plan="enterprise", status="active")  # granted by staff: not revenue

    trend = mrr_trend(now)

    assert [point["label"] for point in trend][:2] == ["Jan 2026", "Feb 2026"]
    assert trend[-1]["label"] == "Dec 2026 (now)"
    by_month = {point["label"][:8]: point["cents"] for point in trend}
    assert by_month["Feb 2026"] == 0
    assert by_month["Mar 2026"] == 2900
    assert by_month["Jun 2026"] == 2900 + 9900
    assert by_month["Aug 2026"] == 2900 + 9900
    assert by_month["Sep 2026"] == 2900
    assert by_month["Dec 2026"] == 2900


def test_index_overview_counts_and_links(admin_as, signup):
    # given a trial ending in 3 days, a failed deployment and a failed webhook event
    trial = Customer.objects.get(customer_id=signup().id)
    Subscription.objects.filter(customer=trial).update(
        trial_ends_at=timezone.now() + timedelta(days=3)
    )
    other = Customer.objects.get(customer_id=signup().id)
    Deployment.objects.filter(customer=other).update(status="failed")
    StripeEvent.objects.create(
        stripe_event_id="evt_x", type="invoice.paid", payload={}, status="failed"
    )
    client = admin_as("Support")

    # when Support opens the index
    page = client.get("/admin/")

    # then each figure is there and its link lists exactly what it counts
    overview = page.context["overview"]
    assert {item["label"]: item["count"] for item in overview["by_status"]}["trialing"] == 2
    assert overview["trials_ending"] == 1
    assert overview["failed_deployments"] == 1
    assert overview["failed_events"] == 1
    content = page.content.decode()
    assert 'href="/api/docs/"' in content
    assert "/admin/queues/" in content  # Flower
    trials = client.get(overview["trials_url"]).content.decode()
    assert trial.customer_id in trials
    assert other.customer_id not in trials
    failed = client.get(overview["failed_deployments_url"]).content.decode()
    assert other.namespace in failed
    assert trial.namespace not in failed
    assert "evt_x" in client.get(overview["failed_events_url"]).content.decode()
    trialing = client.get(overview["by_status"][0]["url"]).content.decode()
    assert trial.customer_id in trialing


def test_scheduled_for_deletion_filter(admin_as, signup):
    gone = Customer.objects.get(customer_id=signup().id)
    kept = Customer.objects.get(customer_id=signup().id)
    Customer.objects.filter(pk=gone.pk).update(
        is_active=False, scheduled_deletion=timezone.now() + timedelta(days=5)
    )

    page = admin_as("Support").get("/admin/customers/customer/?lifecycle=scheduled")

    assert gone.customer_id in page.content.decode()
    assert kept.customer_id not in page.content.decode()


def test_customer_page_answers_what_is_going_on(admin_as, signup):
    customer = Customer.objects.get(customer_id=signup().id)

    page = admin_as("Support").get(customer_url(customer))

    assert page.status_code == 200
    context = page.context
    assert context["subscription"].status == "trialing"
    assert context["entitled_plan"].name == "trial"
    assert len(context["chart"]["days"]) == 90
    assert context["chart"]["max_devices"] == 10  # the trial's limit
    assert context["deployment"].namespace == customer.namespace
    content = page.content.decode()
    for section in (
        "bo-summary",
        "bo-usage",
        "bo-license",
        "bo-refunds",
        "bo-deployment",
        "bo-keys",
        "bo-audit",
    ):
        assert f'id="{section}"' in content
    assert '<script id="usage-chart-data" type="application/json">' in content
    assert "customers/usage_chart.js" in content
    assert 'id="bo-stripe"' in content  # Stripe's view, from the dj-stripe mirror
    # no inline script body: the CSP (script-src 'self') would block it
    assert "<script>" not in content
    assert "customer.created" in content  # the audit trail
