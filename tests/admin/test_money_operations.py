"""Refunds, cancellations and plan changes through the admin's pages, for a customer who paid
through the Stripe simulator (over HTTP, webhooks to the live server)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from customers.models import AuditLog, Customer
from subscriptions.models import Refund, Subscription
from subscriptions.refunds import prorated_refund_amount
from tests.admin.helpers import customer_url, operation_url, page_messages
from tests.helpers import paid_customer

SUBSCRIPTION = "subscriptions/subscription"


@pytest.fixture
def paying(signup, stripe_sim):
    """A professional customer (9900) whose period started 10 days ago."""
    signed_up = paid_customer(signup, stripe_sim, "professional", days_ago=10)
    return Customer.objects.get(customer_id=signed_up.id)


def _url(customer: Customer, slug: str) -> str:
    return operation_url(SUBSCRIPTION, customer.subscription.pk, slug)


def _token(page) -> str:
    return page.content.decode().split('name="request_token" value="')[1].split('"')[0]


def test_prorated_refund_shows_its_amounts_and_is_issued(admin_as, paying):
    # given Finance on the refund page, which shows the pro-rated and maximum amounts
    client = admin_as("Finance")
    subscription = Subscription.objects.get(customer=paying)
    expected = prorated_refund_amount(
        amount_paid=9900,
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        now=timezone.now(),
    )
    page = client.get(_url(paying, "refund"))
    content = page.content.decode()
    assert f"${expected / 100:,.2f}" in content  # pro-rated
    assert "$99.00" in content  # maximum: nothing refunded yet
    assert subscription.latest_invoice_id in content  # the payment it draws on
    assert "$99.00 left" in content

    # when the pro-rated refund is confirmed (twice: a double submit of the same page)
    form = {"rule": "prorated", "reason": "requested_by_customer", "request_token": _token(page)}
    response = client.post(_url(paying, "refund"), form, follow=True)
    again = client.post(_url(paying, "refund"), form, follow=True)

    # then one refund of the pro-rated amount, audited, listed on the customer's page
    refund = Refund.objects.get(customer=paying)
    assert (refund.amount, refund.status) == (expected, "succeeded")
    assert refund.requested_by == "staff:finance"
    assert "issued (succeeded)" in page_messages(response)
    assert "already made" in page_messages(again)
    assert AuditLog.objects.filter(
        customer=paying, action="refund.issued", actor="staff:finance", metadata__amount=expected
    ).exists()
    assert f"${expected / 100:,.2f}" in client.get(customer_url(paying)).content.decode()


def test_refund_by_amount_then_the_remaining(admin_as, paying):
    client = admin_as("Finance")
    url = _url(paying, "refund")
    client.post(
        url,
        {
            "rule": "amount",
            "amount": "10.00",
            "reason": "requested_by_customer",
            "request_token": "a1",
        },
    )
    client.post(
        url, {"rule": "remaining", "reason": "requested_by_customer", "request_token": "a2"}
    )

    amounts = sorted(Refund.objects.filter(customer=paying).values_list("amount", flat=True))
    assert amounts == [1000, 8900]
    # nothing left: the operation is not offered any more
    assert "already fully refunded" in client.get(url).content.decode()
    assert "/operation/refund/" not in client.get(customer_url(paying)).content.decode()


def test_a_refused_refund_shows_the_error_and_changes_nothing(admin_as, paying):
    client = admin_as("Finance")

    response = client.post(
        _url(paying, "refund"),
        {
            "rule": "amount",
            "amount": "500.00",
            "reason": "requested_by_customer",
            "request_token": "too-much",
        },
    )

    assert response.status_code == 200
    assert "not possible" in page_messages(response)
    assert "error" in page_messages(response)
    assert not Refund.objects.filter(customer=paying).exists()
    assert not AuditLog.objects.filter(action="refund.issued").exists()


def test_cancel_at_period_end_then_keep(admin_as, paying):
    client = admin_as("Finance")

    client.post(_url(paying, "cancel-at-period-end"), {})
    assert Subscription.objects.get(customer=paying).cancel_at_period_end

    client.post(_url(paying, "keep"), {})
    subscription = Subscription.objects.get(customer=paying)
    assert not subscription.cancel_at_period_end
    assert subscription.status == "active"
    actions = list(
        AuditLog.objects.filter(
            customer=paying, action="subscription.cancel_at_period_end", actor="staff:finance"
        ).values_list("metadata__cancel", flat=True)
    )
    assert sorted(actions) == [False, True]


def test_cancel_now_with_a_prorated_refund(admin_as, paying):
    client = admin_as("Finance")

    response = client.post(
        _url(paying, "cancel-now"),
        {
            "issue_refund": "on",
            "rule": "prorated",
            "reason": "requested_by_customer",
            "request_token": "cancel-1",
        },
        follow=True,
    )

    assert "canceled now, refund" in page_messages(response)
    assert "issued" in page_messages(response)
    assert Subscription.objects.get(customer=paying).status == "canceled"
    refund = Refund.objects.get(customer=paying)
    assert refund.status == "succeeded"
    assert 0 < refund.amount < 9900
    assert AuditLog.objects.filter(
        customer=paying, action="subscription.canceled", actor="staff:finance"
    ).exists()


def test_cancel_now_with_a_refused_refund_cancels_nothing(admin_as, paying):
    response = admin_as("Finance").post(
        _url(paying, "cancel-now"),
        {
            "issue_refund": "on",
            "rule": "amount",
            "amount": "1000.00",
            "reason": "requested_by_customer",
            "request_token": "cancel-2",
        },
    )

    assert "not possible" in page_messages(response)
    assert Subscription.objects.get(customer=paying).status == "active"
    assert not Refund.objects.filter(customer=paying).exists()


def test_cancel_now_without_refund(admin_as, paying):
    admin_as("Finance").post(
        _url(paying, "cancel-now"),
        {"rule": "prorated", "reason": "requested_by_customer", "request_token": "cancel-3"},
    )

    assert Subscription.objects.get(customer=paying).status == "canceled"
    assert not Refund.objects.filter(customer=paying).exists()


def test_change_plan(admin_as, paying, stripe_sim):
    client = admin_as("Finance")
    page = client.get(_url(paying, "change-plan")).content.decode()
    assert "Estimated proration to enterprise" in page

    response = client.post(_url(paying, "change-plan"), {"new_plan": "enterprise"}, follow=True)
    stripe_sim.wait_for_deliveries()

    assert "now on enterprise" in page_messages(response)
    assert Subscription.objects.get(customer=paying).plan == "enterprise"
    assert AuditLog.objects.filter(
        customer=paying, action="subscription.plan_changed", actor="staff:finance"
    ).exists()
