"""Helpers of the simulator's tests: a webhook receiver, a catalogue, a paid subscription."""

from __future__ import annotations

from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

WEBHOOK_SECRET = "whsec_test_simulator_suite"
DAY = 86_400
APRIL_1 = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())  # a 30-day month


class Receiver(ThreadingHTTPServer):
    """Collects webhook POSTs as (Stripe-Signature header, raw body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), ReceiverHandler)


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Stripe-Signature"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


def price(amount: int, lookup_key: str | None = None, name: str = "Starter") -> stripe.Price:
    product = stripe.Product.create(name=name)
    return stripe.Price.create(
        product=product.id,
        unit_amount=amount,
        currency="usd",
        recurring={"interval": "month"},
        lookup_key=lookup_key,
    )


def subscribe(sim, amount: int = 1000) -> tuple[stripe.Customer, stripe.Subscription]:
    customer = stripe.Customer.create(email="owner@example.com")
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        success_url="https://app.test/ok",
        line_items=[{"price": price(amount).id, "quantity": 1}],
    )
    sim.complete_checkout(session.id, "4242 4242 4242 4242")
    subscription_id = stripe.checkout.Session.retrieve(session.id).subscription
    return customer, stripe.Subscription.retrieve(subscription_id)


def payment_intent_of(invoice_id: str) -> stripe.PaymentIntent:
    """The invoice's successful payment, found the current way: through its payments."""
    payments = stripe.InvoicePayment.list(invoice=invoice_id, status="paid").data
    assert len(payments) == 1, payments
    return stripe.PaymentIntent.retrieve(payments[0].payment.payment_intent)


def charge_id_of(invoice_id: str) -> str:
    return payment_intent_of(invoice_id).latest_charge


def webhook_events(sim, receiver) -> list[stripe.Event]:
    """Every delivered webhook, verified with the library's own signature check."""
    sim.wait_for_deliveries()
    return [
        stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)
        for header, body in receiver.received
    ]


def next_month(ts: int) -> int:
    """The same day and time a calendar month later, or the month's last day."""
    start = datetime.fromtimestamp(ts, tz=UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    for day in range(start.day, 27, -1) if start.day > 28 else [start.day]:
        try:
            return int(start.replace(year=year, month=month, day=day).timestamp())
        except ValueError:
            continue
    raise AssertionError("unreachable")
