"""Payments read the current way (an invoice's InvoicePayments) and refunds that take from
the current period's payments, newest first, never more than paid minus refunded."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
import stripe
from django.apps import apps

from customers.models import Customer
from subscriptions.models import Payment, Refund, Subscription
from subscriptions.refunds import refund_reconcile
from tests.helpers import half_up, paid_customer, period_days, upgrade_later


def _refund(client, customer_id, **fields):
    return client.post(
        "/api/subscriptions/refund", {"customer_id": customer_id, **fields}, format="json"
    )


def _upgraded_customer(signup, stripe_sim, staff_client, days_in: int = 10):
    """Paid 9900 for professional, then, `days_in` days later, the enterprise proration: two
    payments in one period. Returns (customer, first payment, proration payment)."""
    customer = paid_customer(signup, stripe_sim, "professional")
    upgrade_later(stripe_sim, staff_client, customer.id, days=days_in)
    newest, first = Payment.objects.filter(customer__customer_id=customer.id)
    return customer, first, newest


def _stripe_refunds(stripe_sim) -> dict[str, int]:
    """Stripe's refunds: PaymentIntent → amount refunded."""
    found: dict[str, int] = {}
    for refund in stripe_sim.state.all("refund"):
        found[refund["payment_intent"]] = found.get(refund["payment_intent"], 0) + refund["amount"]
    return found


def test_invoice_paid_records_the_invoice_payment_not_removed_fields(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim, "starter")

    payment = Payment.objects.get(customer__customer_id=customer.id)

    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    invoice = stripe_sim.get(stripe_sim.get(subscription.stripe_subscription_id)["latest_invoice"])
    assert not {"charge", "payment_intent", "paid", "subscription"} & set(invoice)
    [invoice_payment] = [
        p for p in stripe_sim.state.all("invoice_payment") if p["invoice"] == invoice["id"]
    ]
    assert payment.stripe_invoice_payment_id == invoice_payment["id"]
    assert payment.reference == {"payment_intent": invoice_payment["payment"]["payment_intent"]}
    assert (payment.amount, payment.stripe_invoice_id) == (2900, invoice["id"])
    assert payment.stripe_subscription_id == subscription.stripe_subscription_id


def test_a_refund_spans_two_payments_of_one_period_newest_first(signup, stripe_sim, staff_client):
    # given 9900 paid at the period start and a proration payment after an upgrade
    customer, first, newest = _upgraded_customer(signup, stripe_sim, staff_client)
    assert first.amount == 9900
    assert newest.amount > 0

    # when refunding more than the newest payment
    response = _refund(staff_client, customer.id, amount=newest.amount + 1000, description="x")

    # then the newest payment is refunded in full and the rest comes from the first one,
    # each with its own Stripe refund and idempotency key, all in the history
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rule"] == "amount"
    assert body["refund"]["amount"] == newest.amount + 1000
    assert body["refund"]["status"] == "succeeded"
    parts = body["refund"]["parts"]
    assert [p["amount"] for p in parts] == [newest.amount, 1000]
    assert _stripe_refunds(stripe_sim) == {
        newest.reference["payment_intent"]: newest.amount,
        first.reference["payment_intent"]: 1000,
    }
    rows = Refund.objects.filter(customer__customer_id=customer.id)
    assert {(r.payment_id, r.amount) for r in rows} == {
        (newest.pk, newest.amount),
        (first.pk, 1000),
    }
    assert len({r.idempotency_key for r in rows}) == 2
    assert len({r.request_key for r in rows}) == 1
    history = staff_client.get(f"/api/subscriptions/{customer.id}/refunds").json()["refunds"]
    assert sorted(r["stripe_refund_id"] for r in history) == sorted(p["refundId"] for p in parts)

    # and what is left is all of the first payment but 1000, and then nothing
    rest = _refund(staff_client, customer.id, description="the rest")
    assert rest.json()["rule"] == "remaining"
    assert rest.json()["refund"]["amount"] == 8900
    nothing = _refund(staff_client, customer.id, amount=1, description="more")
    assert (nothing.status_code, nothing.json()["error"]) == (409, "Nothing to refund")


def test_a_refund_is_never_more_than_paid_minus_refunded(signup, stripe_sim, staff_client):
    customer, first, newest = _upgraded_customer(signup, stripe_sim, staff_client)
    total = first.amount + newest.amount
    assert _refund(staff_client, customer.id, amount=500, description="a").status_code == 200

    too_much = _refund(staff_client, customer.id, amount=total, description="b")

    assert too_much.status_code == 409
    assert too_much.json()["details"] == {"requested": total, "refundable": total - 500}
    assert len(stripe_sim.state.all("refund")) == 1


def test_a_prorated_refund_gives_each_payment_its_unused_share(signup, stripe_sim, staff_client):
    # given two payments: 9900 for the whole period, the proration for its last part
    customer, first, newest = _upgraded_customer(signup, stripe_sim, staff_client, days_in=0)
    days = period_days(customer.id)

    response = _refund(staff_client, customer.id, use_prorated=True)

    # then (the clock of the app being the period start) each refunds all but the started day
    assert response.status_code == 200, response.content
    assert response.json()["rule"] == "prorated"
    parts = [p["amount"] for p in response.json()["refund"]["parts"]]
    assert parts == [
        half_up(newest.amount, days - 1, days),
        half_up(first.amount, days - 1, days),
    ]


@pytest.mark.parametrize(
    ("fields", "rule", "amount"),
    [
        pytest.param({"amount": 700, "use_prorated": True}, "amount", 700, id="amount-wins"),
        pytest.param({"amount": 700}, "amount", 700, id="amount"),
        pytest.param({}, "remaining", 2900, id="remaining"),
    ],
)
def test_the_answer_names_the_rule_applied(signup, stripe_sim, staff_client, fields, rule, amount):
    # given the guide's example body: both `amount` and `use_prorated` are accepted
    customer = paid_customer(signup, stripe_sim, "starter")

    response = _refund(staff_client, customer.id, reason="requested_by_customer", **fields)

    assert response.status_code == 200, response.content
    assert (response.json()["rule"], response.json()["refund"]["rule"]) == (rule, rule)
    assert response.json()["refund"]["amount"] == amount


def test_a_missed_invoice_webhook_is_made_up_from_stripe_before_a_refund(
    signup, stripe_sim, staff_client
):
    # given a payment whose invoice.paid never reached us
    customer = paid_customer(signup, stripe_sim, "starter")
    Payment.objects.filter(customer__customer_id=customer.id).delete()

    response = _refund(staff_client, customer.id, amount=900)

    # then the refund found it through the invoices' expanded payments
    assert response.status_code == 200, response.content
    payment = Payment.objects.get(customer__customer_id=customer.id)
    assert _stripe_refunds(stripe_sim) == {payment.reference["payment_intent"]: 900}


def test_a_refund_made_in_stripe_counts_against_its_payment(signup, stripe_sim, staff_client):
    # given 1000 refunded in the Stripe dashboard (seen through charge.refunded)
    customer = paid_customer(signup, stripe_sim, "starter")
    payment = Payment.objects.get(customer__customer_id=customer.id)
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": stripe_sim.base_url})
    client.v1.refunds.create(params={**payment.reference, "amount": 1000})
    stripe_sim.wait_for_deliveries()
    external = Refund.objects.get(customer__customer_id=customer.id)
    assert (external.payment_id, external.rule, external.status) == (
        payment.pk,
        "external",
        "succeeded",
    )

    # when refunding all that remains
    rest = _refund(staff_client, customer.id)

    # then it is the payment less what Stripe already refunded
    assert rest.json()["refund"]["amount"] == 1900
    assert _stripe_refunds(stripe_sim) == {payment.reference["payment_intent"]: 2900}


@pytest.mark.django_db
def test_payments_recorded_before_invoice_payments_stay_refundable(signup):
    # given a subscription that remembered its payment the old way, and a refund against it
    customer = signup()
    Subscription.objects.filter(customer__customer_id=customer.id).update(
        stripe_subscription_id="sub_old",
        latest_invoice_id="in_old",
        latest_amount_paid=9900,
        latest_payment_reference={"charge": "ch_old"},
        latest_invoice_created=1_790_000_000,
    )
    row = Refund.objects.create(
        customer=Customer.objects.get(customer_id=customer.id),
        amount=100,
        reason="requested_by_customer",
        idempotency_key="refund:old",
        request_fingerprint="old",
        payment_reference={"charge": "ch_old"},
    )
    migration = importlib.import_module("subscriptions.migrations.0003_payments_and_refund_parts")

    # when the migration runs
    migration.legacy_payments(apps, None)

    # then the payment is a Payment, and the refund points at it
    payment = Payment.objects.get(stripe_invoice_payment_id="legacy:in_old")
    assert (payment.amount, payment.reference, payment.stripe_subscription_id) == (
        9900,
        {"charge": "ch_old"},
        "sub_old",
    )
    row.refresh_from_db()
    assert row.payment_id == payment.pk


def test_when_stripe_refuses_one_part_the_parts_not_sent_are_canceled(
    signup, stripe_sim, staff_client
):
    # given two payments, and Stripe refusing the first refund it gets
    customer, first, newest = _upgraded_customer(signup, stripe_sim, staff_client)
    refused = {"type": "invalid_request_error", "message": "Charge is disputed.", "code": "x"}
    stripe_sim.fail_next("/v1/refunds", refused, status=400, method="POST")

    response = _refund(staff_client, customer.id, amount=newest.amount + 1000)

    # then nothing is refunded, now or later
    assert response.status_code == 402, response.content
    assert response.json()["error"] == "Refund failed"
    rows = Refund.objects.filter(customer__customer_id=customer.id)
    assert {(r.payment_id, r.status) for r in rows} == {
        (newest.pk, "failed"),
        (first.pk, "canceled"),
    }
    assert refund_reconcile(older_than=timedelta(0)) == 0
    assert stripe_sim.state.all("refund") == []
