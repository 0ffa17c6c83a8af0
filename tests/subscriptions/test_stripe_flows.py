"""Stripe flows end to end over HTTP: the app calls the simulator with the `stripe` library,
the simulator sends signed webhooks to the live app server."""

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from customers.models import Customer
from deployments.models import Deployment
from licensing.models import LicenseHistory, LicenseRevocation
from lifecycle.entitlements import license_refresh
from stripe_simulator import ApiError
from subscriptions.models import Refund, StripeEvent, Subscription
from subscriptions.refunds import prorated_refund_amount, refund_reconcile
from subscriptions.webhooks import stripe_event_process
from tests.helpers import (
    DAY,
    checkout,
    half_up,
    paid_customer,
    period_days,
    post_signed_webhook,
    staff_api_client,
)


def test_signup_checkout_payment_webhook_upgrades_subscription_and_license(
    signup, stripe_sim, staff_client
):
    # given a new customer: signup created its Stripe customer
    signed_up = signup(company_name="Acme Corp")
    customer_id = signed_up.id
    customer = Customer.objects.get(customer_id=customer_id)
    assert customer.stripe_customer_id.startswith("cus_")
    assert stripe_sim.get(customer.stripe_customer_id)["metadata"]["customer_id"] == customer_id
    client = signed_up.client

    # when the customer checks out on the hosted page and pays with the test card
    session = checkout(client, customer_id, "professional")
    assert session["session_id"].startswith("cs_test_")
    assert session["checkout_url"].startswith(stripe_sim.base_url)
    form = urllib.parse.urlencode({"card_number": "4242 4242 4242 4242"}).encode()
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(urllib.request.Request(session["checkout_url"], data=form), timeout=10)
    redirect.value.close()
    assert redirect.value.code == 303
    assert "/checkout/success?session_id=cs_test_" in redirect.value.headers["Location"]
    deliveries = stripe_sim.wait_for_deliveries()

    # then every signed webhook was accepted, and the subscription and license follow Stripe
    assert {d.event_type for d in deliveries} >= {
        "checkout.session.completed",
        "invoice.paid",
        "customer.subscription.created",
    }
    assert all(d.ok for d in deliveries), [(d.event_type, d.status) for d in deliveries]
    subscription = client.get(f"/api/subscriptions/{customer_id}").json()["subscription"]
    assert subscription["plan"] == "professional"
    assert subscription["status"] == "active"
    assert subscription["stripe_subscription_id"].startswith("sub_")
    license_body = client.get(f"/api/licenses/{customer_id}").json()
    assert license_body["license"] != signed_up.license
    assert license_body["decoded"]["plan"] == "professional"
    assert license_body["decoded"]["features"]["maxDevices"] == 50
    assert (
        LicenseHistory.objects.filter(
            customer=customer, action="upgraded", plan="professional"
        ).count()
        == 1
    )
    assert staff_client.get("/checkout/success?session_id=x").status_code == 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_declined_card_changes_nothing(signup, stripe_sim):
    customer = signup()
    session = checkout(customer.client, customer.id)
    with pytest.raises(ApiError, match="declined"):
        stripe_sim.complete_checkout(session["session_id"], "4000000000000002")
    stripe_sim.wait_for_deliveries()
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    assert (subscription.plan, subscription.status) == ("starter", "trialing")
    assert subscription.stripe_subscription_id == ""


def test_checkout_of_another_customer_is_404_and_staff_may(signup, stripe_sim, staff_client):
    alice, bob = signup(), signup()
    response = alice.client.post(
        "/api/subscriptions/checkout", {"customer_id": bob.id, "plan": "starter"}, format="json"
    )
    assert response.status_code == 404
    assert checkout(staff_client, bob.id, "starter")["session_id"]


def test_upgrade_prorates_and_reissues_license(signup, stripe_sim):
    # given professional (9900) paid 10 days into a calendar month (simulated clock)
    customer = paid_customer(signup, stripe_sim, "professional")
    stripe_sim.advance_clock(10 * DAY)
    days = period_days(customer.id)
    deployment = Deployment.objects.get(customer__customer_id=customer.id)
    job_before = deployment.celery_task_id

    # when upgrading to enterprise (29900)
    response = customer.client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer.id, "new_plan": "enterprise"},
        format="json",
    )
    stripe_sim.wait_for_deliveries()

    # then Stripe invoiced the proration of the days left: in a 30-day month
    # -9900×20/30 + 29900×20/30 = -6600 + 19933 = 13333
    assert response.status_code == 200, response.content
    assert response.json()["subscription"]["plan"] == "enterprise"
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    invoice = stripe_sim.get(stripe_sim.get(subscription.stripe_subscription_id)["latest_invoice"])
    left = days - 10
    assert invoice["amount_paid"] == half_up(29900, left, days) - half_up(9900, left, days)
    decoded = customer.client.get(f"/api/licenses/{customer.id}").json()["decoded"]
    assert decoded["plan"] == "enterprise"
    assert decoded["features"]["maxDevices"] == -1
    actions = list(
        LicenseHistory.objects.filter(customer__customer_id=customer.id).values_list(
            "action", "plan"
        )
    )
    assert actions[0] == ("upgraded", "enterprise")
    # and the instance is redeployed with the new license
    deployment.refresh_from_db()
    assert deployment.celery_task_id != job_before
    assert deployment.status == "deployed"
    # a retry of the same upgrade is refused, not charged twice
    again = customer.client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer.id, "new_plan": "enterprise"},
        format="json",
    )
    assert again.status_code == 409


def test_upgrade_on_trial_is_409(signup, stripe_sim):
    customer = signup()
    response = customer.client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer.id, "new_plan": "enterprise"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"] == "No active subscription"


def test_cancel_at_period_end_and_keep(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim)

    response = customer.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer.id}, format="json"
    )
    assert response.json()["message"] == "Subscription will cancel at period end"
    assert response.json()["subscription"]["cancel_at_period_end"] is True
    assert response.json()["subscription"]["status"] == "active"
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    assert stripe_sim.get(subscription.stripe_subscription_id)["cancel_at_period_end"] is True

    kept = customer.client.post(
        "/api/subscriptions/keep", {"customer_id": customer.id}, format="json"
    )
    assert kept.json()["subscription"]["cancel_at_period_end"] is False
    assert stripe_sim.get(subscription.stripe_subscription_id)["cancel_at_period_end"] is False
    # and cancelling again works (a new Stripe idempotency key, not a replay of the first)
    customer.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer.id}, format="json"
    )
    stripe_sim.wait_for_deliveries()
    assert stripe_sim.get(subscription.stripe_subscription_id)["cancel_at_period_end"] is True
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True


def test_legacy_cancel_ends_access_now(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim)
    response = customer.client.post(
        "/api/subscriptions/cancel", {"customer_id": customer.id}, format="json"
    )
    stripe_sim.wait_for_deliveries()
    assert response.json()["subscription"]["status"] == "canceled"
    assert customer.client.get(f"/api/licenses/{customer.id}").status_code == 403
    assert (
        customer.client.post(
            "/api/subscriptions/cancel", {"customer_id": customer.id}, format="json"
        ).status_code
        == 200
    )
    assert Refund.objects.count() == 0
    # a staff revocation replaces the automatic one, so a later payment does not lift it
    staff = staff_api_client()
    revoked = staff.post(f"/api/licenses/{customer.id}/revoke", {"reason": "fraud"}, format="json")
    assert revoked.json()["reason"] == "fraud"
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    subscription.status = "active"
    subscription.save()
    license_refresh(customer=subscription.customer, reason="test")
    assert LicenseRevocation.objects.get(customer__customer_id=customer.id).reason == "fraud"
    assert customer.client.get(f"/api/licenses/{customer.id}").status_code == 403


def test_cancel_immediate_with_prorated_refund(signup, stripe_sim, staff_client):
    # given 9900 paid, 9 days 23 hours into a calendar month: 10 started days are used
    customer = paid_customer(signup, stripe_sim, days_ago=10 - 1 / 24)
    days = period_days(customer.id)
    expected = half_up(9900, days - 10, days)  # 6600 in a 30-day month: 9900 × 20 / 30

    # a customer key may cancel but not refund
    refused = customer.client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer.id, "issue_refund": True},
        format="json",
    )
    assert refused.status_code == 403

    response = staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {
            "customer_id": customer.id,
            "issue_refund": True,
            "refund_reason": "requested_by_customer",
        },
        format="json",
    )
    stripe_sim.wait_for_deliveries()

    assert response.status_code == 200, response.content
    refund = response.json()["refund"]
    assert refund["amount"] == expected
    assert refund["status"] == "succeeded"
    assert refund["refundId"].startswith("re_")
    assert stripe_sim.get(refund["refundId"])["amount"] == expected
    assert response.json()["subscription"]["status"] == "canceled"
    history = customer.client.get(f"/api/subscriptions/{customer.id}/refunds").json()["refunds"]
    assert [(r["amount"], r["stripe_refund_id"]) for r in history] == [
        (expected, refund["refundId"])
    ]


def test_refunds_partial_full_and_too_much(signup, stripe_sim, staff_client):
    customer_id = paid_customer(signup, stripe_sim, "starter").id  # 2900 paid

    def refund(**fields):
        return staff_client.post(
            "/api/subscriptions/refund", {"customer_id": customer_id, **fields}, format="json"
        )

    first = refund(amount=1000, description="goodwill")
    assert first.json()["refund"]["amount"] == 1000
    assert first.json()["message"] == "Refund issued successfully"
    too_much = refund(amount=5000, description="more")
    assert too_much.status_code == 409
    assert too_much.json()["details"] == {"requested": 5000, "refundable": 1900}
    rest = refund(description="the rest")
    assert rest.json()["refund"]["amount"] == 1900
    nothing = refund(amount=1, description="again")
    assert nothing.status_code == 409
    assert nothing.json()["error"] == "Nothing to refund"
    stripe_sim.wait_for_deliveries()
    assert sorted(Refund.objects.values_list("amount", "status")) == [
        (1000, "succeeded"),
        (1900, "succeeded"),
    ]


def test_refund_of_a_trial_customer_is_no_payment_found(signup, stripe_sim, staff_client):
    response = staff_client.post(
        "/api/subscriptions/refund", {"customer_id": signup().id}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"] == "No payment found"


def test_refund_survives_a_lost_stripe_reply(signup, stripe_sim, staff_client):
    """Stripe made the refund but the reply was lost: the row stays pending, and the
    reconcile job completes it with the same idempotency key, without a second refund."""
    customer_id = paid_customer(signup, stripe_sim).id
    stripe_sim.fail_next("/v1/refunds", status=500, method="POST", after=True)
    response = staff_client.post(
        "/api/subscriptions/refund", {"customer_id": customer_id, "amount": 700}, format="json"
    )
    assert response.status_code == 503
    refund = Refund.objects.get()
    assert refund.status == "pending"

    assert refund_reconcile(older_than=timedelta(0)) == 1
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert len(stripe_sim.state.all("refund")) == 1


def test_twenty_concurrent_identical_refunds_make_one(signup, stripe_sim):
    customer_id = paid_customer(signup, stripe_sim).id
    start = threading.Barrier(20)

    def request_refund(_):
        client = staff_api_client()
        start.wait()
        try:
            response = client.post(
                "/api/subscriptions/refund",
                {
                    "customer_id": customer_id,
                    "amount": 500,
                    "reason": "duplicate",
                    "description": "double charge",
                },
                format="json",
            )
        finally:
            connection.close()  # each thread has its own connection; the test DB must drop
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(request_refund, range(20)))

    assert [code for code, _ in results] == [200] * 20
    assert sum(1 for _, body in results if not body["duplicate"]) == 1
    assert len({body["refund"]["id"] for _, body in results}) == 1
    assert Refund.objects.count() == 1
    assert len(stripe_sim.state.all("refund")) == 1


def test_duplicate_webhook_five_times_has_one_effect(signup, stripe_sim):
    customer_id = paid_customer(signup, stripe_sim).id
    completed = stripe_sim.events("checkout.session.completed")[-1]
    history_before = LicenseHistory.objects.count()
    events_before = StripeEvent.objects.count()

    stripe_sim.redeliver(completed["id"], times=5)
    deliveries = stripe_sim.wait_for_deliveries()

    replays = [d for d in deliveries if d.event_id == completed["id"]][-5:]
    assert [d.status for d in replays] == [200] * 5
    assert all(json.loads(d.response_body)["duplicate"] for d in replays)
    assert StripeEvent.objects.filter(stripe_event_id=completed["id"]).count() == 1
    assert StripeEvent.objects.count() == events_before
    assert LicenseHistory.objects.count() == history_before
    assert Subscription.objects.get(customer__customer_id=customer_id).status == "active"


def test_out_of_order_subscription_update_is_ignored(signup, stripe_sim, live_server):
    customer = paid_customer(signup, stripe_sim)
    customer.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer.id}, format="json"
    )
    stripe_sim.wait_for_deliveries()
    stale = stripe_sim.events("customer.subscription.updated")[-1]
    customer.client.post("/api/subscriptions/keep", {"customer_id": customer.id}, format="json")
    stripe_sim.wait_for_deliveries()

    # when an older update (cancel_at_period_end = true) arrives after the newer one
    old = {
        **stale,
        "id": "evt_late_delivery",
        "created": Subscription.objects.get(
            customer__customer_id=customer.id
        ).stripe_event_at.timestamp()
        - 60,
    }
    old["created"] = int(old["created"])
    response = post_signed_webhook(live_server.url, old)

    # then it is recorded, ignored, and the newer state stands
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ignored"
    assert Subscription.objects.get(customer__customer_id=customer.id).cancel_at_period_end is False


def test_payment_failure_sets_past_due_with_grace(signup, stripe_sim, settings):
    customer = paid_customer(signup, stripe_sim)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    stripe_sim.fail_renewal(subscription.stripe_subscription_id)
    stripe_sim.wait_for_deliveries()
    subscription.refresh_from_db()
    assert subscription.status == "past_due"
    decoded = customer.client.get(f"/api/licenses/{customer.id}").json()["decoded"]
    assert decoded["subscription"]["status"] == "past_due"
    assert decoded["features"]["maxDevices"] == 50
    period_end = int(subscription.current_period_end.timestamp())
    assert decoded["exp"] == period_end + settings.LICENSE_GRACE_DAYS * DAY


def test_subscription_deleted_in_stripe_ends_paid_license(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    import stripe as stripe_lib

    stripe_lib.StripeClient(
        "sk_test_x", base_addresses={"api": stripe_sim.base_url}
    ).v1.subscriptions.cancel(subscription.stripe_subscription_id)
    stripe_sim.wait_for_deliveries()
    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    decoded = customer.client.get(f"/api/licenses/{customer.id}").json()["decoded"]
    assert decoded["plan"] == "unlicensed"
    assert decoded["features"]["maxDevices"] == 2


def test_webhook_handler_failure_answers_500_and_can_be_replayed(signup, stripe_sim, live_server):
    paid_customer(signup, stripe_sim)
    completed = stripe_sim.events("checkout.session.completed")[-1]
    event = {**completed, "id": "evt_handler_fails"}
    stripe_sim.fail_next("/v1/subscriptions/", status=500, method="GET")
    response = post_signed_webhook(live_server.url, event)
    assert response.status_code == 500
    row = StripeEvent.objects.get(stripe_event_id="evt_handler_fails")
    assert row.status == "failed"
    assert row.last_error

    # replayed, it runs (the checkout it copies was applied already: it changes nothing)
    replayed = stripe_event_process(event_id=row.pk)
    assert (replayed.status, replayed.attempts, replayed.last_error) == ("ignored", 2, "")


def test_prorated_amount_matches_the_guides_example():
    start = datetime(2025, 10, 1, tzinfo=UTC)
    amount = prorated_refund_amount(
        amount_paid=10000,
        period_start=start,
        period_end=start + timedelta(days=30),
        now=start + timedelta(days=10),
    )
    assert amount == 6667  # $100 × 20 / 30 = $66.67
    started_day = prorated_refund_amount(
        amount_paid=10000,
        period_start=start,
        period_end=start + timedelta(days=30),
        now=start + timedelta(days=10, seconds=1),
    )
    assert started_day == 6333  # a started day counts as used: 19 / 30


def test_cancel_immediate_with_an_impossible_refund_changes_nothing(
    signup, stripe_sim, staff_client
):
    customer_id = paid_customer(signup, stripe_sim).id  # 9900 paid
    response = staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True, "refund_amount": 50_000},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"] == "Invalid refund amount"
    subscription = Subscription.objects.get(customer__customer_id=customer_id)
    assert subscription.status == "active"
    assert stripe_sim.get(subscription.stripe_subscription_id)["status"] == "active"


def test_cancel_immediate_whose_refund_stripe_refuses_cancels_and_says_why(
    signup, stripe_sim, staff_client
):
    customer_id = paid_customer(signup, stripe_sim).id
    refused = {"type": "invalid_request_error", "message": "Charge is disputed.", "code": "x"}
    stripe_sim.fail_next("/v1/refunds", refused, status=400, method="POST")

    response = staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True, "refund_amount": 1000},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subscription"]["status"] == "canceled"
    assert body["refundIssued"] is False
    assert body["refundReason"] == "Stripe refused the refund: Charge is disputed."
    assert body["refund"]["status"] == "failed"
    assert stripe_sim.state.all("refund") == []


def test_cancel_immediate_while_stripe_refunds_are_down_leaves_the_refund_pending(
    signup, stripe_sim, staff_client
):
    customer_id = paid_customer(signup, stripe_sim).id
    stripe_sim.fail_next("/v1/refunds", status=500, method="POST")

    response = staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True, "refund_amount": 1000},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["subscription"]["status"], body["refundIssued"]) == ("canceled", False)
    assert "recorded as pending and will be completed automatically" in body["refundReason"]
    assert body["refund"]["status"] == "pending"
    assert refund_reconcile(older_than=timedelta(0)) == 1
    assert [r["amount"] for r in stripe_sim.state.all("refund")] == [1000]


def test_cancel_immediate_with_a_refund_issued_says_so(signup, stripe_sim, staff_client):
    customer_id = paid_customer(signup, stripe_sim).id

    body = staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True, "refund_amount": 2500},
        format="json",
    ).json()

    assert (body["refundIssued"], body["refundReason"]) == (True, None)
    assert (body["refund"]["amount"], body["refund"]["rule"]) == (2500, "amount")
