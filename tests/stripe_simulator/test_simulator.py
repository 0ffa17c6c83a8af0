"""The Stripe simulator, driven only through the official ``stripe`` library over real HTTP.

Test helpers of the simulator (checkout completion, clock, renewals, fault injection) stand in
for what a browser or Stripe's scheduler would do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest
import stripe

from stripe_simulator import ApiError
from tests.stripe_simulator.support import (
    APRIL_1,
    DAY,
    WEBHOOK_SECRET,
    charge_id_of,
    next_month,
    payment_intent_of,
    price,
    subscribe,
    webhook_events,
)


def test_customer_create_and_retrieve(sim):
    created = stripe.Customer.create(email="a@example.com", name="Ann", metadata={"org": "7"})

    fetched = stripe.Customer.retrieve(created.id)

    assert created.id.startswith("cus_")
    assert (fetched.email, fetched.name, fetched.metadata["org"]) == ("a@example.com", "Ann", "7")
    assert fetched.livemode is False
    assert [c.id for c in stripe.Customer.list(email="a@example.com")] == [created.id]


def test_deleted_customer_retrieves_as_a_stub_and_cannot_be_used(sim):
    customer = stripe.Customer.create(email="gone@example.com")

    stripe.Customer.delete(customer.id)

    assert stripe.Customer.retrieve(customer.id).last_response.data == {
        "id": customer.id,
        "object": "customer",
        "deleted": True,
    }
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        stripe.checkout.Session.create(
            mode="subscription",
            customer=customer.id,
            success_url="https://app.test/ok",
            line_items=[{"price": price(100).id, "quantity": 1}],
        )


def test_stripe_client_uses_base_addresses(sim):
    client = stripe.StripeClient("sk_test_other", base_addresses={"api": sim.base_url})

    customer = client.v1.customers.create(params={"email": "c@example.com"})

    assert client.v1.customers.retrieve(customer.id).email == "c@example.com"


def test_auth_missing_test_key_raises_authentication_error(sim):
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.create(api_key="sk_live_nope")


def test_retrieve_unknown_id_raises_invalid_request_error(sim):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Subscription.retrieve("sub_missing")

    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"


def test_price_list_filters_by_lookup_keys(sim):
    starter = price(2900, "starter_monthly")
    price(9900, "pro_monthly", name="Pro")

    found = stripe.Price.list(lookup_keys=["starter_monthly"], active=True)
    moved = stripe.Price.create(
        product=starter.product,
        unit_amount=3100,
        currency="usd",
        recurring={"interval": "month"},
        lookup_key="starter_monthly",
        transfer_lookup_key=True,
    )

    assert [p.id for p in found] == [starter.id]
    assert [p.id for p in stripe.Price.list(lookup_keys=["starter_monthly"])] == [moved.id]
    with pytest.raises(stripe.InvalidRequestError):
        price(1, "pro_monthly")


def test_checkout_completion_activates_subscription_and_signs_webhooks(sim, receiver):
    customer, subscription = subscribe(sim, amount=2900)

    invoice = stripe.Invoice.retrieve(subscription.latest_invoice)
    intent = payment_intent_of(invoice.id)
    charge = stripe.Charge.retrieve(intent.latest_charge)
    events = webhook_events(sim, receiver)

    assert subscription.status == "active"
    assert subscription.customer == customer.id
    item = subscription["items"].data[0]
    assert item.current_period_end == next_month(item.current_period_start)
    assert "current_period_end" not in subscription.last_response.data  # on the items now
    assert (invoice.status, invoice.amount_paid, charge.amount) == ("paid", 2900, 2900)
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert (intent.status, charge.captured, charge.amount_captured) == ("succeeded", True, 2900)
    types = [e.type for e in events]
    for expected in (
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
    ):
        assert expected in types
    completed = next(e for e in events if e.type == "checkout.session.completed")
    assert completed.data.object.subscription == subscription.id
    assert stripe.Event.retrieve(completed.id).type == "checkout.session.completed"
    paid = next(e for e in events if e.type == "invoice.paid")
    assert "payments" not in paid.data.object  # never inside a webhook event


@pytest.mark.parametrize("removed", ["charge", "payment_intent", "paid", "subscription"])
def test_an_invoice_carries_none_of_the_removed_fields(sim, removed):
    _, subscription = subscribe(sim)

    invoice = stripe.Invoice.retrieve(subscription.latest_invoice)

    assert removed not in invoice.last_response.data


def test_checkout_page_redirects_to_success_url(sim):
    session = stripe.checkout.Session.create(
        mode="subscription",
        success_url="https://app.test/ok?s={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.test/cancel",
        customer_email="buyer@example.com",
        line_items=[{"price": price(1000).id, "quantity": 1}],
    )
    with urllib.request.urlopen(session.url) as page:  # noqa: S310 - the simulator's page
        assert b"card_number" in page.read()

    declined = _post_card(session.url, "4000 0000 0000 0002")
    paid = _post_card(session.url, "4242 4242 4242 4242")

    assert declined == (402, None)
    assert paid == (303, f"https://app.test/ok?s={session.id}")
    done = stripe.checkout.Session.retrieve(session.id, expand=["line_items"])
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert [li.amount_total for li in done.line_items.data] == [1000]
    assert stripe.Customer.retrieve(done.customer).email == "buyer@example.com"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post_card(url: str, card: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(_NoRedirect)
    data = urllib.parse.urlencode({"card_number": card}).encode()
    try:
        with opener.open(url, data=data) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, exc.headers.get("Location")


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("4000000000000002", "generic_decline"),
        ("4000 0000 0000 9995", "insufficient_funds"),
    ],
)
def test_checkout_decline_creates_no_subscription(sim, card, decline_code):
    customer = stripe.Customer.create(email="d@example.com")
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        success_url="https://app.test/ok",
        line_items=[{"price": price(1000).id, "quantity": 1}],
    )

    with pytest.raises(ApiError) as excinfo:
        sim.complete_checkout(session.id, card)

    assert (excinfo.value.code, excinfo.value.decline_code) == ("card_declined", decline_code)
    assert stripe.checkout.Session.retrieve(session.id).status == "open"
    assert stripe.Subscription.list(customer=customer.id).data == []


def test_an_expired_checkout_session_cannot_be_paid(sim):
    session = stripe.checkout.Session.create(
        mode="subscription",
        success_url="https://app.test/ok",
        line_items=[{"price": price(1000).id, "quantity": 1}],
    )

    expired = stripe.checkout.Session.expire(session.id)

    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(ApiError, match="no longer active"):
        sim.complete_checkout(session.id)


def test_subscription_upgrade_always_invoice_prorates_by_hand(sim, receiver):
    sim.freeze_clock(APRIL_1)
    _, subscription = subscribe(sim, amount=1000)
    pro = price(3000, name="Pro")
    sim.advance_clock(10 * DAY)

    updated = stripe.Subscription.modify(
        subscription.id,
        items=[{"id": subscription["items"].data[0].id, "price": pro.id}],
        proration_behavior="always_invoice",
        expand=["latest_invoice"],
    )

    # 20 of April's 30 days left: credit round(1000 * 20/30) = 667, charge 3000 * 20/30 = 2000.
    invoice = updated.latest_invoice
    assert [line.amount for line in invoice.lines.data] == [-667, 2000]
    assert [line.parent.subscription_item_details.proration for line in invoice.lines.data] == [
        True,
        True,
    ]
    assert invoice.lines.data[1].pricing.price_details.price == pro.id
    assert (invoice.amount_paid, invoice.billing_reason) == (1333, "subscription_update")
    assert stripe.Charge.retrieve(charge_id_of(invoice.id)).amount == 1333
    assert updated["items"].data[0].price.id == pro.id
    assert updated["items"].data[0].plan.amount == 3000
    event = [e for e in webhook_events(sim, receiver) if e.type == "customer.subscription.updated"][
        -1
    ]
    assert event.data.previous_attributes["items"]["data"][0]["price"]["unit_amount"] == 1000


def test_subscription_create_prorations_bill_on_renewal(sim):
    sim.freeze_clock(APRIL_1)
    _, subscription = subscribe(sim, amount=1000)
    pro = price(3000, name="Pro")
    sim.advance_clock(10 * DAY)
    stripe.Subscription.modify(
        subscription.id,
        items=[{"id": subscription["items"].data[0].id, "price": pro.id}],
    )

    sim.advance_clock(20 * DAY)  # reaches May 1, the period end: the clock renews it

    renewed = stripe.Subscription.retrieve(subscription.id, expand=["latest_invoice"])
    assert renewed.latest_invoice.billing_reason == "subscription_cycle"
    assert renewed.latest_invoice.amount_paid == 3000 + 2000 - 667
    old_item, new_item = subscription["items"].data[0], renewed["items"].data[0]
    assert new_item.current_period_start == old_item.current_period_end


def test_monthly_periods_are_calendar_months_from_the_anchor(sim):
    # given a subscription started on January 31st
    jan_31 = int(datetime(2027, 1, 31, 12, tzinfo=UTC).timestamp())
    sim.freeze_clock(jan_31)
    _, subscription = subscribe(sim)

    def period_end() -> datetime:
        item = stripe.Subscription.retrieve(subscription.id)["items"].data[0]
        return datetime.fromtimestamp(item.current_period_end, tz=UTC)

    # then it renews on the last day of February, and on the 31st again in March
    assert period_end() == datetime(2027, 2, 28, 12, tzinfo=UTC)
    sim.advance_clock(28 * DAY)
    assert period_end() == datetime(2027, 3, 31, 12, tzinfo=UTC)
    sim.advance_clock(31 * DAY)
    assert period_end() == datetime(2027, 4, 30, 12, tzinfo=UTC)
    assert stripe.Subscription.retrieve(subscription.id).billing_cycle_anchor == jan_31


def test_subscription_cancel_at_period_end_toggles(sim, receiver):
    _, subscription = subscribe(sim)
    period_end = subscription["items"].data[0].current_period_end

    on = stripe.Subscription.modify(subscription.id, cancel_at_period_end=True)
    off = stripe.Subscription.modify(subscription.id, cancel_at_period_end=False)

    assert (on.cancel_at_period_end, on.cancel_at) == (True, period_end)
    assert (off.cancel_at_period_end, off.cancel_at, off.status) == (False, None, "active")
    updates = [
        e for e in webhook_events(sim, receiver) if e.type == "customer.subscription.updated"
    ]
    assert [e.data.previous_attributes["cancel_at_period_end"] for e in updates] == [False, True]


def test_subscription_cancel_ends_it_now(sim, receiver):
    _, subscription = subscribe(sim)

    canceled = stripe.Subscription.cancel(subscription.id)

    assert canceled.status == "canceled"
    assert canceled.ended_at == canceled.canceled_at is not None
    assert stripe.Subscription.list(customer=subscription.customer).data == []
    assert "customer.subscription.deleted" in [e.type for e in webhook_events(sim, receiver)]


def test_renewal_failure_then_success(sim, receiver):
    _, subscription = subscribe(sim)

    failed = sim.fail_renewal(subscription.id)
    open_invoice = stripe.Invoice.retrieve(failed["latest_invoice"], expand=["payments"])
    sim.renew_subscription(subscription.id)

    assert (failed["status"], open_invoice.status) == ("past_due", "open")
    attempt = open_invoice.payments.data[0]
    assert (attempt.status, attempt.amount_paid) == ("open", None)
    intent = stripe.PaymentIntent.retrieve(attempt.payment.payment_intent)
    assert intent.last_payment_error.decline_code == "generic_decline"
    assert stripe.Charge.retrieve(intent.latest_charge).status == "failed"
    assert stripe.Subscription.retrieve(subscription.id).status == "active"
    types = [e.type for e in webhook_events(sim, receiver)]
    assert types.count("invoice.payment_failed") == 1
    assert types.count("invoice.paid") == 2


def test_refund_partial_then_remaining_then_over_refund(sim, receiver):
    _, subscription = subscribe(sim, amount=2900)
    intent = payment_intent_of(subscription.latest_invoice)

    partial = stripe.Refund.create(
        payment_intent=intent.id, amount=900, reason="requested_by_customer"
    )
    rest = stripe.Refund.create(payment_intent=intent.id)

    assert (partial.amount, rest.amount) == (900, 2000)
    assert partial.charge == intent.latest_charge
    charge = stripe.Charge.retrieve(intent.latest_charge, expand=["refunds"])
    assert (charge.amount_refunded, charge.refunded) == (2900, True)
    assert [r.id for r in charge.refunds.data] == [rest.id, partial.id]
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Refund.create(charge=charge.id, amount=1)
    assert excinfo.value.code == "charge_already_refunded"
    assert [e.type for e in webhook_events(sim, receiver)].count("charge.refunded") == 2


def test_refund_over_remaining_amount_is_rejected(sim):
    _, subscription = subscribe(sim, amount=1000)
    charge_id = charge_id_of(subscription.latest_invoice)
    stripe.Refund.create(charge=charge_id, amount=600)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Refund.create(charge=charge_id, amount=500)

    assert (excinfo.value.code, excinfo.value.param) == ("amount_too_large", "amount")


def test_meter_event_duplicate_identifier_is_rejected(sim):
    customer = stripe.Customer.create(email="m@example.com")
    meter = stripe.billing.Meter.create(
        display_name="API calls", event_name="api_calls", default_aggregation={"formula": "sum"}
    )

    for value in ("5", "7"):
        stripe.billing.MeterEvent.create(
            event_name="api_calls",
            identifier=f"batch-{value}",
            payload={"stripe_customer_id": customer.id, "value": value},
        )
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.billing.MeterEvent.create(
            event_name="api_calls",
            identifier="batch-5",
            payload={"stripe_customer_id": customer.id, "value": "5"},
        )

    assert excinfo.value.code == "duplicate_meter_event"
    assert sim.meter_total(customer.id, meter.id) == 12


def test_webhook_redeliver_sends_identical_event(sim, receiver):
    customer = stripe.Customer.create(email="r@example.com")
    event = sim.events("customer.created")[-1]

    sim.redeliver(event["id"], times=2)
    delivered = [e for e in webhook_events(sim, receiver) if e.type == "customer.created"]

    assert [e.id for e in delivered] == [event["id"]] * 3
    assert {e.data.object.id for e in delivered} == {customer.id}
    assert all(d.ok for d in sim.deliveries)


def test_held_webhooks_are_handed_over_instead_of_sent(sim, receiver):
    sim.hold_webhooks()
    customer = stripe.Customer.create(email="h@example.com")

    held = sim.take_held_webhooks()
    stripe.Customer.modify(customer.id, name="After")
    later = webhook_events(sim, receiver)

    assert [e["type"] for e in held] == ["customer.created"]
    assert [e.type for e in later] == ["customer.updated"]


def test_sign_payload_matches_stripe_verification(sim):
    payload = json.dumps(
        {"id": "evt_custom", "object": "event", "type": "ping", "data": {"object": {}}}
    )

    header = sim.sign_payload(payload.encode(), WEBHOOK_SECRET)

    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET).id == "evt_custom"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_wrong")
