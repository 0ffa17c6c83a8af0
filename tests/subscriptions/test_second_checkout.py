"""A second checkout cannot make a second subscription: checkout refuses while one is live or
a session for another plan is open, and if two payments still race, the second subscription
is canceled and refunded in full by its webhook handler."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import stripe
from django.core.management import call_command
from django.db import connection

from customers.models import AuditLog, Customer
from subscriptions import stripe_api
from subscriptions.models import Refund, Subscription
from tests.helpers import (
    DAY,
    HttpAnswer,
    checkout,
    paid_customer,
    post_signed_webhook,
    staff_api_client,
)


def _checkout(client, customer_id, plan):
    return client.post(
        "/api/subscriptions/checkout", {"customer_id": customer_id, "plan": plan}, format="json"
    )


def _stripe(stripe_sim) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": stripe_sim.base_url})


def test_checkout_for_another_plan_while_one_is_open_is_409_naming_it(signup, stripe_sim):
    customer = signup()
    first = checkout(customer.client, customer.id, "professional")

    other = _checkout(customer.client, customer.id, "enterprise")
    same = _checkout(customer.client, customer.id, "professional")

    assert other.status_code == 409, other.content
    assert other.json()["error"] == "Checkout already open"
    assert other.json()["details"]["session_id"] == first["session_id"]
    assert other.json()["details"]["plan"] == "professional"
    assert first["session_id"] in other.json()["message"]
    assert same.status_code == 200
    assert same.json()["session_id"] == first["session_id"]
    assert len(stripe_sim.state.all("checkout.session")) == 1


def test_checkout_while_stripe_has_a_live_subscription_is_409_naming_it(signup, stripe_sim):
    # given a subscription made at Stripe that this service does not know (yet)
    customer = signup()
    stripe_customer = Customer.objects.get(customer_id=customer.id).stripe_customer_id
    price = stripe_api.price_id_for_plan("starter", "iotistic_starter_monthly")
    stripe_sim.hold_webhooks()  # so that it stays unknown here
    live = _stripe(stripe_sim).v1.subscriptions.create(
        params={
            "customer": stripe_customer,
            "items": [{"price": price}],
            "default_payment_method": "pm_card_visa",
        }
    )

    response = _checkout(customer.client, customer.id, "professional")

    assert response.status_code == 409, response.content
    assert response.json()["error"] == "Subscription exists"
    assert response.json()["details"]["stripe_subscription_id"] == live.id
    assert live.id in response.json()["message"]
    assert stripe_sim.state.all("checkout.session") == []


def test_two_checkouts_at_once_open_one_session(signup, stripe_sim):
    customer_id = signup().id
    start = threading.Barrier(2)

    def open_checkout(plan):
        client = staff_api_client()
        start.wait()
        try:
            response = _checkout(client, customer_id, plan)
        finally:
            connection.close()
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(open_checkout, ["professional", "enterprise"]))

    assert sorted(code for code, _ in results) == [200, 409], results
    assert [body["error"] for code, body in results if code == 409] == ["Checkout already open"]
    assert len(stripe_sim.state.all("checkout.session")) == 1


def _by_subscription(events: list[dict]) -> dict[str, list[dict]]:
    """The held events, grouped by the subscription they belong to (in order)."""
    streams: dict[str, list[dict]] = {}
    current = ""
    for event in events:
        obj = event["data"]["object"]
        sub = obj["id"] if obj["object"] == "subscription" else obj.get("subscription")
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        current = sub or details.get("subscription") or current
        streams.setdefault(current, []).append(event)
    return streams


def test_two_parallel_paid_checkouts_end_with_one_subscription_and_one_full_refund(
    signup, stripe_sim, live_server
):
    # given two sessions for one customer: one from checkout, one it could not see (a
    # request that checked before the first existed)
    customer = signup()
    first = checkout(customer.client, customer.id, "professional")
    row = Customer.objects.get(customer_id=customer.id)
    second = stripe_api.checkout_session_create(
        stripe_customer_id=row.stripe_customer_id,
        price_id=stripe_api.price_id_for_plan("enterprise", "iotistic_enterprise_monthly"),
        success_url="https://app.test/ok",
        cancel_url="https://app.test/no",
        customer_id=customer.id,
        plan="enterprise",
        idempotency_key="raced-checkout",
    )

    # when both are paid at once, and Stripe delivers both streams of events at once
    stripe_sim.hold_webhooks()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(stripe_sim.complete_checkout, [first["session_id"], second["id"]]))
    streams = _by_subscription(stripe_sim.take_held_webhooks())
    subscription_ids = [s for s in streams if s.startswith("sub_")]
    assert len(subscription_ids) == 2
    start = threading.Barrier(2)

    def deliver(sub_id) -> list[HttpAnswer]:
        start.wait()
        try:
            return [post_signed_webhook(live_server.url, event) for event in streams[sub_id]]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = [a for stream in pool.map(deliver, subscription_ids) for a in stream]
    stripe_sim.wait_for_deliveries()

    # then every event was taken, one subscription is live and it is the customer's
    assert {a.status_code for a in answers} == {200}, [a.content for a in answers]
    live = [s for s in subscription_ids if stripe_sim.get(s)["status"] == "active"]
    assert len(live) == 1
    [duplicate] = [s for s in subscription_ids if s not in live]
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    assert (subscription.stripe_subscription_id, subscription.status) == (live[0], "active")
    canceled = stripe_sim.get(duplicate)
    assert canceled["status"] == "canceled"
    assert canceled["cancellation_details"]["comment"].startswith(f"Duplicate of {live[0]}")
    # and the other was refunded in full, once, with an audit row
    paid = stripe_sim.get(canceled["latest_invoice"])["amount_paid"]
    refund = Refund.objects.get(customer__customer_id=customer.id)
    assert (refund.amount, refund.status, refund.reason) == (paid, "succeeded", "duplicate")
    assert [r["amount"] for r in stripe_sim.state.all("refund")] == [paid]
    audit = AuditLog.objects.get(action="subscription.duplicate_canceled")
    assert audit.metadata["subscription"] == duplicate
    assert audit.metadata["kept"] == live[0]
    assert audit.metadata["refunded"] == paid


def test_a_duplicate_resolved_once_stays_resolved_when_its_events_come_again(
    signup, stripe_sim, live_server
):
    # given a second subscription made in the dashboard, canceled and refunded
    customer = paid_customer(signup, stripe_sim, "starter")
    row = Customer.objects.get(customer_id=customer.id)
    price = stripe_api.price_id_for_plan("starter", "iotistic_starter_monthly")
    extra = _stripe(stripe_sim).v1.subscriptions.create(
        params={
            "customer": row.stripe_customer_id,
            "items": [{"price": price}],
            "default_payment_method": "pm_card_visa",
            "metadata": {"customer_id": customer.id},
        }
    )
    stripe_sim.wait_for_deliveries()
    assert stripe_sim.get(extra.id)["status"] == "canceled"
    assert Refund.objects.get(customer=row).amount == 2900

    # when all of its events are delivered again
    for event in stripe_sim.events():
        if extra.id in str(event["data"]["object"]):
            again = post_signed_webhook(live_server.url, {**event, "id": event["id"] + "x"})
            assert again.status_code == 200, again.content

    # then nothing more is canceled, refunded or audited
    assert Refund.objects.filter(customer=row).count() == 1
    assert len(stripe_sim.state.all("refund")) == 1
    assert AuditLog.objects.filter(action="subscription.duplicate_canceled").count() == 1
    assert Subscription.objects.get(customer=row).status == "active"


def test_checkout_recreates_a_stripe_customer_stripe_no_longer_knows_once(signup, stripe_sim):
    # given a customer whose Stripe customer is gone (a simulator restarted without its state)
    customer = signup()
    stale = Customer.objects.get(customer_id=customer.id).stripe_customer_id
    stripe_sim.forget(stale)

    session = checkout(customer.client, customer.id, "professional")

    # then checkout worked with a new Stripe customer, and the audit log says so
    row = Customer.objects.get(customer_id=customer.id)
    assert row.stripe_customer_id not in ("", stale)
    assert stripe_sim.get(session["session_id"])["customer"] == row.stripe_customer_id
    assert stripe_sim.get(row.stripe_customer_id)["metadata"] == {"customer_id": customer.id}
    audit = AuditLog.objects.get(action="stripe.customer_recreated", customer=row)
    assert audit.metadata == {
        "stale_stripe_customer_id": stale,
        "stripe_customer_id": row.stripe_customer_id,
    }


def test_checkout_with_a_cached_price_stripe_lost_uses_the_new_one(signup, stripe_sim):
    # given a price id cached by a first checkout, then lost by Stripe and made again
    first = signup()
    checkout(first.client, first.id, "professional")
    old = stripe_api.price_id_for_plan("professional", "iotistic_professional_monthly")
    stripe_sim.forget(old)
    stripe_sim.advance_clock(DAY + 1)  # past the 24 h in which Stripe replays setup's keys
    call_command("stripe_setup", stdout=io.StringIO())

    second = signup()
    session = checkout(second.client, second.id, "professional")

    [line] = [
        line
        for line in stripe_sim.state.objects[session["session_id"]]["_line_items"]
        if line["quantity"]
    ]
    assert line["price"]["id"] not in ("", old)
    assert line["price"]["lookup_key"] == "iotistic_professional_monthly"
