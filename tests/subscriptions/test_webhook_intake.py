"""The webhook intake stores each event once and applies it once, in one transaction, also
when Stripe delivers the same new event on several connections at the same moment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from customers.models import AuditLog
from subscriptions.models import StripeEvent
from tests.helpers import paid_customer, post_signed_webhook


def test_concurrent_deliveries_of_one_new_event_store_and_apply_it_once(
    signup, stripe_sim, live_server
):
    # given a paid customer, and a new event id for their subscription's current state
    paid_customer(signup, stripe_sim)
    updated = stripe_sim.events("customer.subscription.created")[-1]
    event = {**updated, "id": "evt_concurrent_once", "type": "customer.subscription.updated"}

    # when 10 connections deliver it at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: post_signed_webhook(live_server.url, event), range(10)))

    # then every delivery is answered 200, one of them as the first, and the event was stored
    # and applied once
    assert [a.status_code for a in answers] == [200] * 10
    bodies = [a.json() for a in answers]
    assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * 9
    row = StripeEvent.objects.get(stripe_event_id="evt_concurrent_once")
    assert row.attempts == 1
    assert row.status in ("processed", "ignored")
    assert {b["status"] for b in bodies} == {row.status}
    assert AuditLog.objects.filter(actor="stripe:evt_concurrent_once").count() <= 1


def test_a_failed_event_is_stored_failed_and_applied_again_on_redelivery(
    signup, stripe_sim, live_server
):
    # given an event our handler fails on (its subscription is unknown to Stripe)
    customer = paid_customer(signup, stripe_sim)
    created = stripe_sim.events("customer.subscription.created")[-1]
    obj = {**created["data"]["object"], "id": "sub_missing"}
    obj["metadata"] = {**(obj.get("metadata") or {}), "customer_id": customer.id}
    event = {**created, "id": "evt_fails_then_fixed", "data": {"object": obj}}

    # when Stripe delivers it twice
    first = post_signed_webhook(live_server.url, event)
    second = post_signed_webhook(live_server.url, event)

    # then both answer 500 in the error shape, and the one row counts both attempts
    assert (first.status_code, second.status_code) == (500, 500)
    assert first.json()["error"] == "Webhook handler failed"
    row = StripeEvent.objects.get(stripe_event_id="evt_fails_then_fixed")
    assert (row.status, row.attempts) == ("failed", 2)
    assert "sub_missing" in row.last_error
