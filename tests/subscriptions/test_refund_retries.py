"""A refund request sent again is the same refund, whatever was invoiced in between (issue 14,
item 8): identical requests within the dedup window are one refund; a different request, or
the same one after the window, is a new refund."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from subscriptions.models import Payment, Refund, Subscription
from tests.helpers import paid_customer, upgrade_later


def _refund(client, customer_id, **fields):
    response = client.post(
        "/api/subscriptions/refund", {"customer_id": customer_id, **fields}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _upgrade(stripe_sim, staff_client, customer_id: str) -> None:
    """Ten days on, professional → enterprise: a proration invoice is paid, a newer payment."""
    upgrade_later(stripe_sim, staff_client, customer_id, days=10)
    assert Payment.objects.filter(customer__customer_id=customer_id).count() == 2


def _refunds_made(stripe_sim, customer_id: str) -> tuple[int, int]:
    """(Stripe's refunds, our refund rows)."""
    return (
        len(stripe_sim.state.all("refund")),
        Refund.objects.filter(customer__customer_id=customer_id).count(),
    )


def test_refund_retried_after_a_proration_invoice_is_the_first_refund(
    signup, stripe_sim, staff_client
):
    # given a refund of 500, and then an upgrade whose proration invoice is paid
    customer = paid_customer(signup, stripe_sim, "professional")
    request = {"amount": 500, "reason": "requested_by_customer", "description": "goodwill"}
    first = _refund(staff_client, customer.id, **request)
    assert first["duplicate"] is False
    _upgrade(stripe_sim, staff_client, customer.id)

    # when the identical request comes again within the dedup window
    retry = _refund(staff_client, customer.id, **request)

    # then it is the first refund: no second Stripe refund, no second row
    assert retry["duplicate"] is True
    assert retry["message"] == "Refund already issued for this request"
    assert retry["refund"]["id"] == first["refund"]["id"]
    assert retry["refund"]["refundId"] == first["refund"]["refundId"]
    assert _refunds_made(stripe_sim, customer.id) == (1, 1)

    # and a different request (another amount) after the upgrade is a new refund
    other = _refund(staff_client, customer.id, **{**request, "amount": 700})
    assert other["duplicate"] is False
    assert other["refund"]["amount"] == 700
    assert _refunds_made(stripe_sim, customer.id) == (2, 2)

    # and the first request once its window has passed is a new refund too
    window = timedelta(seconds=settings.REFUND_DEDUP_WINDOW_SECONDS)
    Refund.objects.filter(customer__customer_id=customer.id).update(
        created_at=timezone.now() - window - timedelta(seconds=1)
    )
    later = _refund(staff_client, customer.id, **request)
    assert later["duplicate"] is False
    assert later["refund"]["id"] not in {first["refund"]["id"], other["refund"]["id"]}
    assert later["refund"]["amount"] == 500
    assert _refunds_made(stripe_sim, customer.id) == (3, 3)


@pytest.mark.parametrize(
    "request_fields",
    [
        pytest.param({"use_prorated": True}, id="prorated"),
        pytest.param({}, id="remaining"),
    ],
)
def test_refund_without_an_amount_retried_after_a_proration_invoice_is_the_first_refund(
    signup, stripe_sim, staff_client, request_fields
):
    # given a pro-rated (or all-that-remains) refund, then a paid proration invoice
    customer = paid_customer(signup, stripe_sim, "professional")
    first = _refund(staff_client, customer.id, description="closing", **request_fields)
    assert first["duplicate"] is False
    _upgrade(stripe_sim, staff_client, customer.id)

    # when the identical request comes again: its amount would now take from the new payment
    retry = _refund(staff_client, customer.id, description="closing", **request_fields)

    # then it is still the first refund, with the first amount
    assert retry["duplicate"] is True
    assert retry["refund"]["id"] == first["refund"]["id"]
    assert retry["refund"]["amount"] == first["refund"]["amount"]
    assert _refunds_made(stripe_sim, customer.id) == (1, 1)


@pytest.mark.parametrize(
    "renew",
    [
        pytest.param("renew_subscription", id="renewal-paid"),
        pytest.param("fail_renewal", id="renewal-declined"),
    ],
)
def test_refund_retried_after_a_renewal_invoice_is_the_first_refund(
    signup, stripe_sim, staff_client, renew
):
    # given a refund, then the next period's invoice (paid, or declined: a period without a
    # payment of its own yet)
    customer = paid_customer(signup, stripe_sim, "professional")
    request = {"amount": 500, "description": "goodwill"}
    first = _refund(staff_client, customer.id, **request)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    period_end = int(subscription.current_period_end.timestamp())
    stripe_sim.advance_clock(period_end - stripe_sim.now(), process_renewals=False)
    getattr(stripe_sim, renew)(subscription.stripe_subscription_id)
    stripe_sim.wait_for_deliveries()

    # when the identical request comes again within the dedup window
    retry = _refund(staff_client, customer.id, **request)

    # then it is answered as the first refund, and nothing more is refunded
    assert retry["duplicate"] is True
    assert retry["refund"]["id"] == first["refund"]["id"]
    assert _refunds_made(stripe_sim, customer.id) == (1, 1)


def test_a_prorated_refund_is_not_made_twice_for_the_same_unused_days(
    signup, stripe_sim, staff_client
):
    # given a customer canceled now with a pro-rated refund 10 days into a period
    customer = paid_customer(signup, stripe_sim, "professional", days_ago=10)
    body = {"customer_id": customer.id, "issue_refund": True}
    first = staff_client.post("/api/subscriptions/cancel-immediate", body, format="json")
    assert first.status_code == 200, first.content
    refunded = first.json()["refund"]["amount"]
    assert 0 < refunded < 9900

    # when the same cancel-immediate is sent again once the dedup window has passed
    window = timedelta(seconds=settings.REFUND_DEDUP_WINDOW_SECONDS)
    Refund.objects.filter(customer__customer_id=customer.id).update(
        created_at=timezone.now() - window - timedelta(seconds=1)
    )
    again = staff_client.post("/api/subscriptions/cancel-immediate", body, format="json")

    # then the unused days already refunded are not refunded again (it says why), and a
    # pro-rated refund request says the same
    assert again.status_code == 200, again.content
    assert again.json()["refundIssued"] is False
    assert "Nothing of the current period" in again.json()["refundReason"]
    prorated = staff_client.post(
        "/api/subscriptions/refund",
        {"customer_id": customer.id, "use_prorated": True},
        format="json",
    )
    assert prorated.status_code == 409, prorated.content
    assert _refunds_made(stripe_sim, customer.id) == (1, 1)
    assert sum(r["amount"] for r in stripe_sim.state.all("refund")) == refunded


def test_an_idempotency_key_reused_for_another_refund_is_refused(signup, stripe_sim, staff_client):
    # given a refund made with an Idempotency-Key
    customer = paid_customer(signup, stripe_sim, "professional")
    headers = {"HTTP_IDEMPOTENCY_KEY": "refund-key-1"}
    body = {"customer_id": customer.id, "amount": 500, "description": "goodwill"}
    first = staff_client.post("/api/subscriptions/refund", body, format="json", **headers)
    assert first.status_code == 200, first.content

    # when the same key comes with the same request, it is the first refund
    same = staff_client.post("/api/subscriptions/refund", body, format="json", **headers)
    assert same.status_code == 200, same.content
    assert same.json()["duplicate"] is True
    assert same.json()["refund"]["id"] == first.json()["refund"]["id"]

    # and with another amount or description, it is refused, as Stripe refuses a reused key
    for other in ({**body, "amount": 700}, {**body, "description": "other"}):
        reused = staff_client.post("/api/subscriptions/refund", other, format="json", **headers)
        assert reused.status_code == 409, reused.content
        assert reused.json()["error"] == "Idempotency key reused"
        assert "refund-key-1" in reused.json()["message"]
    assert _refunds_made(stripe_sim, customer.id) == (1, 1)
