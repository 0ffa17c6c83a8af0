"""An email and an audit row belong to a state change that happened once (issue 14 item 6).

Concurrent duplicates of one request (deactivate, cancel now, cancel at period end) and
repeats of one already done change the state once: only the request that made the change
writes its audit row and enqueues its email; the others answer as a repeat does.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from django.core import mail
from django.db import connection

from customers.models import AuditLog, Customer
from lifecycle import plan_changes
from lifecycle.offboarding import DeactivationOptions, customer_deactivate
from subscriptions.models import Refund, Subscription
from tests.helpers import DAY, paid_customer, staff_api_client

DEACTIVATED = "Your Iotistic account has been deactivated"
CANCELED = "Your subscription has been canceled"


def _subjects(subject: str) -> int:
    return sum(1 for message in mail.outbox if message.subject == subject)


def _audits(customer_id: str, action: str) -> int:
    return AuditLog.objects.filter(customer__customer_id=customer_id, action=action).count()


def _concurrently(times: int, path: str, body: dict) -> list[tuple[int, dict]]:
    """POST `body` to `path` from `times` staff clients at once (one connection each)."""
    start = threading.Barrier(times)

    def post(_):
        client = staff_api_client()
        start.wait()
        try:
            response = client.post(path, body, format="json")
        finally:
            connection.close()  # each thread has its own connection; the test DB must drop
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(post, range(times)))


def test_twenty_concurrent_deactivations_send_one_email_and_write_one_audit_row(signup, stripe_sim):
    # given a paying customer
    customer_id = paid_customer(signup, stripe_sim, days_ago=10).id
    mail.outbox.clear()

    # when staff deactivates them 20 times at once, with a refund
    results = _concurrently(
        20,
        "/api/subscriptions/deactivate",
        {"customer_id": customer_id, "issue_refund": True, "retention_days": 30},
    )
    stripe_sim.wait_for_deliveries()

    # then every request answers the one deactivation, which was done once
    assert [code for code, _ in results] == [200] * 20, results
    assert {body["result"]["refundIssued"] for _, body in results} == {True}
    assert {body["result"]["subscriptionCanceled"] for _, body in results} == {True}
    assert len(stripe_sim.state.all("refund")) == 1
    assert Refund.objects.filter(customer__customer_id=customer_id).count() == 1
    assert len(stripe_sim.events("customer.subscription.deleted")) == 1
    # and it is told once: one email, one audit row
    assert _subjects(DEACTIVATED) == 1
    assert _audits(customer_id, "customer.deactivated") == 1


def test_twenty_concurrent_immediate_cancellations_send_one_email(signup, stripe_sim):
    customer_id = paid_customer(signup, stripe_sim).id
    mail.outbox.clear()

    results = _concurrently(20, "/api/subscriptions/cancel-immediate", {"customer_id": customer_id})
    stripe_sim.wait_for_deliveries()

    # every request answers 200 with the canceled subscription, as a repeat does
    assert [code for code, _ in results] == [200] * 20, results
    assert {body["subscription"]["status"] for _, body in results} == {"canceled"}
    assert len(stripe_sim.events("customer.subscription.deleted")) == 1
    assert _subjects(CANCELED) == 1
    assert _audits(customer_id, "subscription.canceled") == 1


def test_repeating_cancel_on_a_canceled_subscription_sends_no_email(signup, stripe_sim):
    # given a paying customer who canceled
    paid = paid_customer(signup, stripe_sim)
    first = paid.client.post("/api/subscriptions/cancel", {"customer_id": paid.id}, format="json")
    stripe_sim.wait_for_deliveries()
    assert first.status_code == 200, first.content
    assert _subjects(CANCELED) == 1
    assert _audits(paid.id, "subscription.canceled") == 1

    # when the cancel is sent again, on both endpoints
    again = paid.client.post("/api/subscriptions/cancel", {"customer_id": paid.id}, format="json")
    immediate = paid.client.post(
        "/api/subscriptions/cancel-immediate", {"customer_id": paid.id}, format="json"
    )
    stripe_sim.wait_for_deliveries()

    # then they answer as before (200, the canceled subscription) and tell nobody again
    assert again.status_code == 200, again.content
    assert again.json().keys() == first.json().keys()
    assert again.json()["subscription"] == first.json()["subscription"]
    assert immediate.status_code == 200, immediate.content
    assert immediate.json()["subscription"]["status"] == "canceled"
    assert immediate.json()["refund"] is None
    assert _subjects(CANCELED) == 1
    assert _audits(paid.id, "subscription.canceled") == 1


def test_concurrent_cancellations_at_period_end_send_one_email(signup, stripe_sim):
    paid = paid_customer(signup, stripe_sim)
    mail.outbox.clear()
    revision = Subscription.objects.get(customer__customer_id=paid.id).revision

    results = _concurrently(10, "/api/subscriptions/cancel-at-period-end", {"customer_id": paid.id})
    again = paid.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": paid.id}, format="json"
    )
    stripe_sim.wait_for_deliveries()

    assert [code for code, _ in results] == [200] * 10, results
    assert {body["subscription"]["cancel_at_period_end"] for _, body in results} == {True}
    assert again.status_code == 200, again.content
    graceful = [m for m in mail.outbox if m.subject.startswith("Your subscription will end on")]
    assert len(graceful) == 1
    assert _audits(paid.id, "subscription.cancel_at_period_end") == 1
    # one change was made at Stripe: the revision moved once
    assert Subscription.objects.get(customer__customer_id=paid.id).revision == revision + 1


def test_ten_concurrent_immediate_cancellations_with_a_refund_tell_it_once(signup, stripe_sim):
    customer_id = paid_customer(signup, stripe_sim, days_ago=10).id
    mail.outbox.clear()

    results = _concurrently(
        10,
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True},
    )
    stripe_sim.wait_for_deliveries()

    assert [code for code, _ in results] == [200] * 10, results
    assert len({body["refund"]["id"] for _, body in results}) == 1
    assert len(stripe_sim.state.all("refund")) == 1
    assert len(stripe_sim.events("customer.subscription.deleted")) == 1
    assert _subjects(CANCELED) == 1
    assert _audits(customer_id, "subscription.canceled") == 1
    # the refund is in that row; a duplicate that reserved it first audits it on its own
    assert _audits(customer_id, "refund.issued") <= 1


def test_a_deactivation_read_before_another_finished_changes_nothing(signup, stripe_sim):
    # given a paying customer, read (active) by a request that is then overtaken by another
    # request deactivating them completely, with a refund
    customer_id = paid_customer(signup, stripe_sim, days_ago=10).id
    stale = Customer.objects.get(customer_id=customer_id)
    options = DeactivationOptions(issue_refund=True, retention_days=30)
    first = customer_deactivate(
        customer=Customer.objects.get(customer_id=customer_id), options=options, actor="staff:a"
    )
    stripe_sim.wait_for_deliveries()
    assert first.status == "completed"
    mail.outbox.clear()

    # when the overtaken request goes on with what it read
    second = customer_deactivate(customer=stale, options=options, actor="staff:b")
    stripe_sim.wait_for_deliveries()

    # then it finds the first one's deactivation: no second refund, email or audit row
    assert second.pk == first.pk
    assert len(stripe_sim.state.all("refund")) == 1
    assert Refund.objects.filter(customer__customer_id=customer_id).count() == 1
    assert _subjects(DEACTIVATED) == 0
    assert _audits(customer_id, "customer.deactivated") == 1


def test_a_retry_after_a_cancel_that_died_before_its_refund_tells_it_once(
    signup, stripe_sim, monkeypatch
):
    # given a paying customer, and a cancel-immediate with a refund whose process dies (as a
    # worker killed by gunicorn's timeout would) after the cancel committed, before the refund
    customer_id = paid_customer(signup, stripe_sim, days_ago=10).id
    mail.outbox.clear()
    body = {"customer_id": customer_id, "issue_refund": True}
    real_request = plan_changes.refunds.refund_request

    def dies(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(plan_changes.refunds, "refund_request", dies)
    with pytest.raises(SystemExit):
        staff_api_client().post("/api/subscriptions/cancel-immediate", body, format="json")
    assert Subscription.objects.get(customer__customer_id=customer_id).status == "canceled"
    assert _audits(customer_id, "subscription.canceled") == 0
    monkeypatch.setattr(plan_changes.refunds, "refund_request", real_request)

    # when staff retry it, twice
    first = staff_api_client().post("/api/subscriptions/cancel-immediate", body, format="json")
    again = staff_api_client().post("/api/subscriptions/cancel-immediate", body, format="json")
    stripe_sim.wait_for_deliveries()

    # then the refund is made once, and the cancellation is audited and emailed once
    assert (first.status_code, again.status_code) == (200, 200), first.content
    assert first.json()["refund"]["id"] == again.json()["refund"]["id"]
    assert len(stripe_sim.state.all("refund")) == 1
    assert _subjects(CANCELED) == 1
    assert _audits(customer_id, "subscription.canceled") == 1


def test_a_cancellation_at_period_end_applied_by_its_webhook_is_told_once(
    signup, stripe_sim, live_server
):
    # given a paying customer whose cancellation at period end is made at Stripe (the
    # dashboard, or our API call whose answer was lost), so only the webhook applies it here
    customer_id = paid_customer(signup, stripe_sim).id
    subscription = Subscription.objects.get(customer__customer_id=customer_id)
    mail.outbox.clear()
    stripe.StripeClient(
        "sk_test_dashboard", base_addresses={"api": stripe_sim.base_url}
    ).v1.subscriptions.update(subscription.stripe_subscription_id, {"cancel_at_period_end": True})
    stripe_sim.wait_for_deliveries()

    # then the customer is told once, as for a cancellation asked for through the API
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    graceful = [m for m in mail.outbox if m.subject.startswith("Your subscription will end on")]
    assert len(graceful) == 1

    # and when the API request is retried, it answers as done and tells nobody again
    again = staff_api_client().post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer_id}, format="json"
    )
    stripe_sim.wait_for_deliveries()
    assert again.status_code == 200, again.content
    assert len([m for m in mail.outbox if m.subject.startswith("Your subscription will end")]) == 1


def test_an_immediate_cancellation_made_at_stripe_is_told_once(signup, stripe_sim, live_server):
    # given a paying customer whose subscription is canceled at Stripe (the dashboard)
    customer_id = paid_customer(signup, stripe_sim).id
    subscription = Subscription.objects.get(customer__customer_id=customer_id)
    mail.outbox.clear()
    stripe.StripeClient(
        "sk_test_dashboard", base_addresses={"api": stripe_sim.base_url}
    ).v1.subscriptions.cancel(subscription.stripe_subscription_id)
    stripe_sim.wait_for_deliveries()

    # then the webhook that applies it tells the customer once, with the audit row
    assert Subscription.objects.get(pk=subscription.pk).status == "canceled"
    assert _subjects(CANCELED) == 1
    assert _audits(customer_id, "subscription.canceled") == 1

    # and our cancel-immediate sent afterwards answers as done and tells nobody again
    again = staff_api_client().post(
        "/api/subscriptions/cancel-immediate", {"customer_id": customer_id}, format="json"
    )
    assert again.status_code == 200, again.content
    assert _subjects(CANCELED) == 1
    assert _audits(customer_id, "subscription.canceled") == 1


def test_a_subscription_ending_at_the_period_end_it_was_canceled_for_is_not_told_again(
    signup, stripe_sim
):
    # given a paying customer who canceled at period end (told then)
    customer_id = paid_customer(signup, stripe_sim).id
    answer = staff_api_client().post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer_id}, format="json"
    )
    assert answer.status_code == 200, answer.content
    stripe_sim.wait_for_deliveries()
    mail.outbox.clear()

    # when the period ends and Stripe ends the subscription
    stripe_sim.advance_clock(32 * DAY)
    stripe_sim.wait_for_deliveries()

    # then it is canceled here, and no "canceled immediately" email goes out
    assert Subscription.objects.get(customer__customer_id=customer_id).status == "canceled"
    assert _subjects(CANCELED) == 0
