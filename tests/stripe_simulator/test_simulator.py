"""The Stripe simulator, driven only through the official ``stripe`` library over real HTTP.

Test helpers of the simulator (checkout completion, clock, renewals, fault injection) stand in
for what a browser or Stripe's scheduler would do.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from stripe_simulator import ApiError, start_simulator

WEBHOOK_SECRET = "whsec_test_simulator_suite"
DAY = 86_400


class _Receiver(ThreadingHTTPServer):
    """Collects webhook POSTs as (Stripe-Signature header, raw body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Stripe-Signature"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@pytest.fixture
def receiver():
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sim(receiver, monkeypatch):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/stripe"
    handle = start_simulator(port=0, webhook_url=url, webhook_secret=WEBHOOK_SECRET)
    monkeypatch.setattr(stripe, "api_key", "sk_test_simulator")
    monkeypatch.setattr(stripe, "api_base", handle.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield handle
    handle.stop()


def _price(amount: int, lookup_key: str | None = None, name: str = "Starter") -> stripe.Price:
    product = stripe.Product.create(name=name)
    return stripe.Price.create(
        product=product.id,
        unit_amount=amount,
        currency="usd",
        recurring={"interval": "month"},
        lookup_key=lookup_key,
    )


def _subscribe(sim, amount: int = 1000) -> tuple[stripe.Customer, stripe.Subscription]:
    customer = stripe.Customer.create(email="owner@example.com")
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        success_url="https://app.test/ok",
        line_items=[{"price": _price(amount).id, "quantity": 1}],
    )
    sim.complete_checkout(session.id, "4242 4242 4242 4242")
    subscription_id = stripe.checkout.Session.retrieve(session.id).subscription
    return customer, stripe.Subscription.retrieve(subscription_id)


def _webhook_events(sim, receiver) -> list[stripe.Event]:
    """Every delivered webhook, verified with the library's own signature check."""
    sim.wait_for_deliveries()
    return [
        stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)
        for header, body in receiver.received
    ]


def test_customer_create_and_retrieve(sim):
    created = stripe.Customer.create(email="a@example.com", name="Ann", metadata={"org": "7"})

    fetched = stripe.Customer.retrieve(created.id)

    assert created.id.startswith("cus_")
    assert (fetched.email, fetched.name, fetched.metadata["org"]) == ("a@example.com", "Ann", "7")
    assert fetched.livemode is False
    assert [c.id for c in stripe.Customer.list(email="a@example.com")] == [created.id]


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
    starter = _price(2900, "starter_monthly")
    _price(9900, "pro_monthly", name="Pro")

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
        _price(1, "pro_monthly")


def test_checkout_completion_activates_subscription_and_signs_webhooks(sim, receiver):
    customer, subscription = _subscribe(sim, amount=2900)

    invoice = stripe.Invoice.retrieve(subscription.latest_invoice)
    charge = stripe.Charge.retrieve(invoice.charge)
    events = _webhook_events(sim, receiver)

    assert subscription.status == "active"
    assert subscription.customer == customer.id
    assert subscription.current_period_end - subscription.current_period_start == 30 * DAY
    assert subscription["items"].data[0].current_period_end == subscription.current_period_end
    assert (invoice.status, invoice.amount_paid, charge.amount) == ("paid", 2900, 2900)
    assert stripe.PaymentIntent.retrieve(invoice.payment_intent).status == "succeeded"
    types = [e.type for e in events]
    for expected in (
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
    ):
        assert expected in types
    completed = next(e for e in events if e.type == "checkout.session.completed")
    assert completed.data.object.subscription == subscription.id
    assert stripe.Event.retrieve(completed.id).type == "checkout.session.completed"


def test_checkout_page_redirects_to_success_url(sim):
    session = stripe.checkout.Session.create(
        mode="subscription",
        success_url="https://app.test/ok?s={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.test/cancel",
        customer_email="buyer@example.com",
        line_items=[{"price": _price(1000).id, "quantity": 1}],
    )
    with urllib.request.urlopen(session.url) as page:  # noqa: S310 - the simulator's page
        assert b"card_number" in page.read()

    declined = _post_card(session.url, "4000 0000 0000 0002")
    paid = _post_card(session.url, "4242 4242 4242 4242")

    assert declined == (402, None)
    assert paid == (303, f"https://app.test/ok?s={session.id}")
    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
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
        line_items=[{"price": _price(1000).id, "quantity": 1}],
    )

    with pytest.raises(ApiError) as excinfo:
        sim.complete_checkout(session.id, card)

    assert (excinfo.value.code, excinfo.value.decline_code) == ("card_declined", decline_code)
    assert stripe.checkout.Session.retrieve(session.id).status == "open"
    assert stripe.Subscription.list(customer=customer.id).data == []


def test_subscription_upgrade_always_invoice_prorates_by_hand(sim, receiver):
    sim.freeze_clock()
    _, subscription = _subscribe(sim, amount=1000)
    pro = _price(3000, name="Pro")
    sim.advance_clock(10 * DAY)

    updated = stripe.Subscription.modify(
        subscription.id,
        items=[{"id": subscription["items"].data[0].id, "price": pro.id}],
        proration_behavior="always_invoice",
        expand=["latest_invoice"],
    )

    # 20 of 30 days left: credit round(1000 * 20/30) = 667, charge 3000 * 20/30 = 2000.
    invoice = updated.latest_invoice
    assert [line.amount for line in invoice.lines.data] == [-667, 2000]
    assert (invoice.amount_paid, invoice.billing_reason) == (1333, "subscription_update")
    assert stripe.Charge.retrieve(invoice.charge).amount == 1333
    assert updated["items"].data[0].price.id == pro.id
    event = [
        e for e in _webhook_events(sim, receiver) if e.type == "customer.subscription.updated"
    ][-1]
    assert event.data.previous_attributes["items"]["data"][0]["price"]["unit_amount"] == 1000


def test_subscription_create_prorations_bill_on_renewal(sim):
    sim.freeze_clock()
    _, subscription = _subscribe(sim, amount=1000)
    pro = _price(3000, name="Pro")
    sim.advance_clock(10 * DAY)
    stripe.Subscription.modify(
        subscription.id,
        items=[{"id": subscription["items"].data[0].id, "price": pro.id}],
    )

    sim.advance_clock(20 * DAY)  # reaches current_period_end: the clock renews the subscription

    renewed = stripe.Subscription.retrieve(subscription.id, expand=["latest_invoice"])
    assert renewed.latest_invoice.billing_reason == "subscription_cycle"
    assert renewed.latest_invoice.amount_paid == 3000 + 2000 - 667
    assert renewed.current_period_start == subscription.current_period_end


def test_subscription_cancel_at_period_end_toggles(sim, receiver):
    _, subscription = _subscribe(sim)

    on = stripe.Subscription.modify(subscription.id, cancel_at_period_end=True)
    off = stripe.Subscription.modify(subscription.id, cancel_at_period_end=False)

    assert (on.cancel_at_period_end, on.cancel_at) == (True, subscription.current_period_end)
    assert (off.cancel_at_period_end, off.cancel_at, off.status) == (False, None, "active")
    updates = [
        e for e in _webhook_events(sim, receiver) if e.type == "customer.subscription.updated"
    ]
    assert [e.data.previous_attributes["cancel_at_period_end"] for e in updates] == [False, True]


def test_subscription_cancel_ends_it_now(sim, receiver):
    _, subscription = _subscribe(sim)

    canceled = stripe.Subscription.cancel(subscription.id)

    assert canceled.status == "canceled"
    assert canceled.ended_at == canceled.canceled_at is not None
    assert stripe.Subscription.list(customer=subscription.customer).data == []
    assert "customer.subscription.deleted" in [e.type for e in _webhook_events(sim, receiver)]


def test_renewal_failure_then_success(sim, receiver):
    _, subscription = _subscribe(sim)

    failed = sim.fail_renewal(subscription.id)
    open_invoice = stripe.Invoice.retrieve(failed["latest_invoice"])
    sim.renew_subscription(subscription.id)

    assert (failed["status"], open_invoice.status) == ("past_due", "open")
    assert stripe.Subscription.retrieve(subscription.id).status == "active"
    types = [e.type for e in _webhook_events(sim, receiver)]
    assert types.count("invoice.payment_failed") == 1
    assert types.count("invoice.paid") == 2


def test_refund_partial_then_remaining_then_over_refund(sim, receiver):
    _, subscription = _subscribe(sim, amount=2900)
    charge_id = stripe.Invoice.retrieve(subscription.latest_invoice).charge

    partial = stripe.Refund.create(charge=charge_id, amount=900, reason="requested_by_customer")
    rest = stripe.Refund.create(charge=charge_id)

    assert (partial.amount, rest.amount) == (900, 2000)
    charge = stripe.Charge.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (2900, True)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Refund.create(charge=charge_id, amount=1)
    assert excinfo.value.code == "charge_already_refunded"
    assert [e.type for e in _webhook_events(sim, receiver)].count("charge.refunded") == 2


def test_refund_over_remaining_amount_is_rejected(sim):
    _, subscription = _subscribe(sim, amount=1000)
    charge_id = stripe.Invoice.retrieve(subscription.latest_invoice).charge
    stripe.Refund.create(charge=charge_id, amount=600)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Refund.create(charge=charge_id, amount=500)

    assert (excinfo.value.code, excinfo.value.param) == ("amount_too_large", "amount")


def test_refund_idempotency_key_replays_same_refund(sim):
    _, subscription = _subscribe(sim, amount=1000)
    charge_id = stripe.Invoice.retrieve(subscription.latest_invoice).charge

    first = stripe.Refund.create(charge=charge_id, amount=300, idempotency_key="refund-1")
    again = stripe.Refund.create(charge=charge_id, amount=300, idempotency_key="refund-1")

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [r.id for r in stripe.Refund.list(charge=charge_id)] == [first.id]
    assert stripe.Charge.retrieve(charge_id).amount_refunded == 300
    with pytest.raises(stripe.IdempotencyError):
        stripe.Refund.create(charge=charge_id, amount=400, idempotency_key="refund-1")


def test_fail_next_after_commit_retry_returns_original_refund(sim):
    _, subscription = _subscribe(sim, amount=1000)
    charge_id = stripe.Invoice.retrieve(subscription.latest_invoice).charge
    sim.fail_next("/v1/refunds", after=True)

    with pytest.raises(stripe.APIError):
        stripe.Refund.create(charge=charge_id, amount=250, idempotency_key="lost-reply")
    retried = stripe.Refund.create(charge=charge_id, amount=250, idempotency_key="lost-reply")

    assert retried.amount == 250
    assert stripe.Charge.retrieve(charge_id).amount_refunded == 250


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
    delivered = [e for e in _webhook_events(sim, receiver) if e.type == "customer.created"]

    assert [e.id for e in delivered] == [event["id"]] * 3
    assert {e.data.object.id for e in delivered} == {customer.id}
    assert all(d.ok for d in sim.deliveries)


def test_sign_payload_matches_stripe_verification(sim):
    payload = json.dumps(
        {"id": "evt_custom", "object": "event", "type": "ping", "data": {"object": {}}}
    )

    header = sim.sign_payload(payload.encode(), WEBHOOK_SECRET)

    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET).id == "evt_custom"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_wrong")
