"""The webhook inbox says what an event did (issue 14 item 10): `processed` when handling it
changed something here, with one audit row naming what; `ignored`, and no audit row, when it
changed nothing (out of order, already applied, not ours)."""

from __future__ import annotations

from customers.models import AuditLog
from subscriptions.models import Payment, StripeEvent, Subscription
from tests.helpers import WEBHOOK_SECRET, checkout, paid_customer, post_signed_webhook


def _held_checkout(signup, stripe_sim) -> tuple[str, dict[str, dict]]:
    """A customer who paid a checkout whose webhooks were held: (customer id, event by type)."""
    customer = signup()
    session = checkout(customer.client, customer.id)
    stripe_sim.hold_webhooks()
    stripe_sim.complete_checkout(session["session_id"], "4242 4242 4242 4242")
    events = {event["type"]: event for event in stripe_sim.take_held_webhooks()}
    return customer.id, events


def _audits(event_id: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(actor=f"stripe:{event_id}"))


def test_a_late_invoice_paid_that_records_the_payment_is_processed(signup, stripe_sim, live_server):
    # given a paid checkout whose subscription events arrived before its invoice's
    customer_id, events = _held_checkout(signup, stripe_sim)
    applied = post_signed_webhook(live_server.url, events["checkout.session.completed"])
    assert applied.json()["status"] == "processed"
    assert not Payment.objects.filter(customer__customer_id=customer_id).exists()
    subscription = Subscription.objects.get(customer__customer_id=customer_id)

    # when invoice.paid arrives, older than the subscription state applied
    paid = events["invoice.paid"]
    late = {**paid, "created": int(subscription.stripe_event_at.timestamp()) - 60}
    answer = post_signed_webhook(live_server.url, late)

    # then its payment is recorded and the inbox says so, with one audit row naming it
    assert answer.status_code == 200, answer.content
    assert Payment.objects.filter(customer__customer_id=customer_id).count() == 1
    assert answer.json()["status"] == "processed"
    assert StripeEvent.objects.get(stripe_event_id=paid["id"]).status == "processed"
    [audit] = _audits(paid["id"])
    assert (audit.action, audit.metadata["changed"]) == ("stripe.invoice.paid", ["payments"])

    # and the same invoice's payment_succeeded, which finds it all recorded, is ignored unaudited
    succeeded = events["invoice.payment_succeeded"]
    again = post_signed_webhook(live_server.url, {**succeeded, "created": late["created"]})
    assert again.json()["status"] == "ignored"
    assert Payment.objects.filter(customer__customer_id=customer_id).count() == 1
    assert _audits(succeeded["id"]) == []
    [applied_audit] = _audits(events["checkout.session.completed"]["id"])
    assert applied_audit.metadata["changed"] == ["subscription"]


def test_an_out_of_order_subscription_event_is_ignored_without_an_audit_row(
    signup, stripe_sim, live_server
):
    customer = paid_customer(signup, stripe_sim)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    created = stripe_sim.events("customer.subscription.created")[-1]
    stale = {
        **created,
        "id": "evt_stale_created",
        "created": int(subscription.stripe_event_at.timestamp()) - 60,
    }

    answer = post_signed_webhook(live_server.url, stale)

    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "ignored"
    assert _audits("evt_stale_created") == []


def test_an_event_that_finds_its_change_applied_is_ignored_without_an_audit_row(
    signup, stripe_sim, live_server
):
    # given a paid checkout applied (and audited) once
    customer_id, events = _held_checkout(signup, stripe_sim)
    completed = events["checkout.session.completed"]
    assert post_signed_webhook(live_server.url, completed).json()["status"] == "processed"
    assert len(_audits(completed["id"])) == 1
    before = Subscription.objects.get(customer__customer_id=customer_id)

    # when the subscription's own event says the same, and a copy of the checkout's comes
    # under a new id (as a second endpoint's delivery would)
    created = events["customer.subscription.created"]
    answers = [
        post_signed_webhook(live_server.url, created),
        post_signed_webhook(live_server.url, {**completed, "id": "evt_same_again"}),
    ]

    # then they changed nothing and the inbox says so
    assert [a.status_code for a in answers] == [200, 200], [a.content for a in answers]
    assert [a.json()["status"] for a in answers] == ["ignored", "ignored"]
    assert _audits(created["id"]) == []
    assert _audits("evt_same_again") == []
    after = Subscription.objects.get(customer__customer_id=customer_id)
    assert (after.plan, after.status, after.current_period_end) == (
        before.plan,
        before.status,
        before.current_period_end,
    )


def test_a_payment_failure_without_a_subscription_is_ignored_without_an_audit_row(
    signup, client, settings
):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    # given an invoice event of our customer that names no subscription
    customer = signup()
    event = {
        "id": "evt_failed_no_sub",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": 1_700_000_000,
        "data": {
            "object": {
                "id": "in_no_sub",
                "object": "invoice",
                "metadata": {"customer_id": customer.id},
            }
        },
    }

    answer = post_signed_webhook(client, event)

    # then nothing was done with it, and no audit row says otherwise
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "ignored"
    assert _audits("evt_failed_no_sub") == []
