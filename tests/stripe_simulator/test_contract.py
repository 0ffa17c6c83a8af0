"""The simulator's answers against the pinned API version's own definitions (contract.py).

Every route of the simulator is driven with the official ``stripe`` library, and every answer
it received, every event (listed and delivered as a webhook) and each event's ``data.object``
is checked against the object classes inside the installed ``stripe`` package. Nothing here
lists fields by hand: upgrading ``stripe`` makes this test name what the simulator must change.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_simulator import shapes, start_simulator
from stripe_simulator.routes import ROUTES
from tests.stripe_simulator.contract import API_VERSION, Checker

DAY = 86_400


class _Inbox(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _InboxHandler)


class _InboxHandler(BaseHTTPRequestHandler):
    server: _Inbox

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.payloads.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@pytest.fixture
def inbox():
    server = _Inbox()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sim(inbox):
    handle = start_simulator(
        webhook_url=f"http://127.0.0.1:{inbox.server_address[1]}/hook", webhook_secret="whsec_c"
    )
    yield handle
    handle.stop()


@dataclass
class Answers:
    """What the library received, with the object type each call must answer."""

    received: list[tuple[str, str, dict]] = field(default_factory=list)

    def __call__(self, expected: str, result: Any) -> Any:
        data = result.last_response.data
        self.received.append((expected, result.last_response.headers.get("Request-Id", ""), data))
        return result


def exercise(sim) -> Answers:
    """One scenario through every route: a catalogue, a checkout, an upgrade with proration,
    metered usage billed at renewal, a declined renewal, refunds, a trial, a cancellation,
    a search, an expired session and a deleted customer."""
    client = stripe.StripeClient(
        "sk_test_contract", base_addresses={"api": sim.base_url}, max_network_retries=0
    )
    v1, got = client.v1, Answers()
    sim.freeze_clock()

    meter = got("billing.meter", v1.billing.meters.create(params={
        "display_name": "Overage", "event_name": "contract_overage",
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }))  # fmt: skip
    got("billing.meter", v1.billing.meters.retrieve(meter.id))
    got("list", v1.billing.meters.list(params={"status": "active"}))
    product = got("product", v1.products.create(params={"name": "Starter", "description": "x"}))
    got("product", v1.products.retrieve(product.id))
    got("list", v1.products.features.list(product.id))
    got("list", v1.products.list(params={"active": True}))
    starter = got("price", v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 2900,
        "recurring": {"interval": "month"}, "lookup_key": "contract_starter",
    }))  # fmt: skip
    pro = got("price", v1.prices.create(params={
        "product_data": {"name": "Professional"}, "currency": "usd", "unit_amount": 9900,
        "recurring": {"interval": "month"}, "lookup_key": "contract_pro",
    }))  # fmt: skip
    metered = got("price", v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 1,
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
    }))  # fmt: skip
    got("price", v1.prices.retrieve(starter.id))
    got("list", v1.prices.list(params={"lookup_keys": ["contract_starter"], "active": True}))

    customer = got("customer", v1.customers.create(params={
        "email": "buyer@example.com", "name": "Buyer", "metadata": {"customer_id": "cust_1"},
    }))  # fmt: skip
    got("customer", v1.customers.retrieve(customer.id))
    got("customer", v1.customers.update(customer.id, params={"description": "first"}))
    got("list", v1.customers.list(params={"email": "buyer@example.com"}))
    got("search_result", v1.customers.search(params={"query": "metadata['customer_id']:'cust_1'"}))
    # What dj-stripe's sync reads besides billing objects (subscriptions/mirror.py).
    got("account", v1.accounts.retrieve_current())
    got("list", v1.accounts.list())
    got("list", v1.customers.payment_sources.list(customer.id, params={"object": "card"}))
    got("customer", v1.customers.retrieve(customer.id, params={"expand": ["sources"]}))

    session = got("checkout.session", v1.checkout.sessions.create(params={
        "mode": "subscription", "customer": customer.id,
        "line_items": [{"price": starter.id, "quantity": 1}, {"price": metered.id}],
        "success_url": "https://app.test/ok", "cancel_url": "https://app.test/no",
        "client_reference_id": "cust_1", "metadata": {"plan": "starter"},
        "subscription_data": {"metadata": {"plan": "starter"}},
    }))  # fmt: skip
    got("list", v1.checkout.sessions.line_items.list(session.id))
    sim.complete_checkout(session.id)
    session = got(
        "checkout.session",
        v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]}),
    )
    got("list", v1.checkout.sessions.list(params={"customer": customer.id, "status": "complete"}))
    abandoned = got("checkout.session", v1.checkout.sessions.create(params={
        "mode": "subscription", "customer_email": "later@example.com",
        "line_items": [{"price": pro.id, "quantity": 1}], "success_url": "https://app.test/ok",
    }))  # fmt: skip
    got("checkout.session", v1.checkout.sessions.expire(abandoned.id))

    sub = got("subscription", v1.subscriptions.retrieve(session.subscription))
    got("list", v1.subscriptions.list(params={"customer": customer.id, "status": "all"}))
    item = sub["items"].data[0]
    got("subscription_item", v1.subscription_items.retrieve(item.id))
    got("list", v1.subscription_items.list(params={"subscription": sub.id}))
    first_invoice = got(
        "invoice", v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["discounts"]})
    )
    got("list", v1.invoices.line_items.list(first_invoice.id))

    sim.advance_clock(3 * DAY)
    got("subscription", v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": pro.id}], "proration_behavior": "always_invoice",
        "metadata": {"plan": "professional"}, "expand": ["latest_invoice.payments"],
    }))  # fmt: skip
    got("billing.meter_event", v1.billing.meter_events.create(params={
        "event_name": "contract_overage", "identifier": "usage-1",
        "payload": {"stripe_customer_id": customer.id, "value": "250"},
    }))  # fmt: skip
    got("subscription", v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True}))
    got("subscription", v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False}))
    sim.fail_renewal(sub.id)
    sim.advance_clock(70 * DAY)  # the clock renews it again (a paid cycle) as the period ends

    invoices = got("list", v1.invoices.list(params={
        "customer": customer.id, "expand": ["data.payments"], "limit": 100,
    }))  # fmt: skip
    got("list", v1.invoices.list(params={"subscription": sub.id, "status": "paid"}))
    payments = got("list", v1.invoice_payments.list(params={"invoice": first_invoice.id}))
    got("invoice_payment", v1.invoice_payments.retrieve(payments.data[0].id))
    intent = got(
        "payment_intent",
        v1.payment_intents.retrieve(payments.data[0].payment.payment_intent),
    )
    got("list", v1.payment_intents.list(params={"customer": customer.id}))
    got("payment_method", v1.payment_methods.retrieve(intent.payment_method))
    got("list", v1.charges.list(params={"customer": customer.id}))
    refund = got("refund", v1.refunds.create(params={
        "payment_intent": intent.id, "amount": 900, "reason": "requested_by_customer",
        "metadata": {"row": "1"},
    }))  # fmt: skip
    got("refund", v1.refunds.retrieve(refund.id, params={"expand": ["charge"]}))
    got("list", v1.refunds.list(params={"payment_intent": intent.id}))
    got("charge", v1.charges.retrieve(intent.latest_charge, params={"expand": ["refunds"]}))
    assert len(invoices.data) >= 4  # create, proration, declined cycle, paid cycle

    trial = got("subscription", v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": starter.id, "quantity": 2}],
        "trial_period_days": 7, "metadata": {"plan": "trial"},
    }))  # fmt: skip
    got("subscription", v1.subscriptions.cancel(trial.id, params={"prorate": True}))

    gone = got("customer", v1.customers.create(params={"email": "gone@example.com"}))
    got("customer", v1.customers.delete(gone.id))
    got("customer", v1.customers.retrieve(gone.id))

    events = got("list", v1.events.list(params={"limit": 100}))
    got("event", v1.events.retrieve(events.data[0].id))
    got("list", v1.events.list(params={"types": ["invoice.paid", "charge.refunded"]}))
    return got


def _all_events(sim) -> list[dict]:
    """Every event, as the JSON of the pages the library received."""
    client = stripe.StripeClient("sk_test_contract", base_addresses={"api": sim.base_url})
    found: list[dict] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.v1.events.list(params=params).last_response.data
        found += page["data"]
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def _violations(sim, inbox, answers: Answers) -> tuple[list[str], Checker]:
    checker = Checker()
    for expected, request_id, data in answers.received:
        if data.get("object") != expected:
            checker.fail(request_id, f"expected a {expected}, got {data.get('object')}")
        checker.check_response(data, f"{expected}[{request_id}]")
    sim.wait_for_deliveries()
    for payload in inbox.payloads:
        checker.check_event(json.loads(payload), "webhook")
    listed = _all_events(sim)
    for event in listed:
        checker.check_event(event)
    assert len(listed) == len(inbox.payloads) > 20
    return checker.violations, checker


def test_every_answer_and_event_matches_the_pinned_api_version(sim, inbox):
    answers = exercise(sim)

    violations, checker = _violations(sim, inbox, answers)

    assert violations == [], f"{len(violations)} violations of {API_VERSION}:\n" + "\n".join(
        violations
    )
    returned = {data["object"] for _, _, data in answers.received}
    pages = [data for _, _, data in answers.received if data["object"] in ("list", "search_result")]
    returned |= {item["object"] for page in pages for item in page["data"]}
    assert returned - {"list", "search_result"} <= checker.checked
    assert {"invoice_payment", "line_item", "item", "plan", "billing.meter_event", "account"} <= (
        checker.checked
    )


def test_the_scenario_calls_every_route_of_the_simulator(sim, inbox):
    exercise(sim)

    answered = {(method, route) for method, route, status in sim.state.request_log if status < 300}

    missing = [
        f"{route.method} {route.pattern.pattern}"
        for route in ROUTES
        if (route.method, route.pattern.pattern) not in answered
    ]
    assert missing == []


# ---------------------------------------------------------------- the check can fail
def _without(builder: Callable[..., dict], key: str) -> Callable[..., dict]:
    def build(*args: Any, **kwargs: Any) -> dict:
        obj = builder(*args, **kwargs)
        del obj[key]
        return obj

    return build


def test_a_required_field_removed_from_one_simulator_object_is_a_violation(sim, inbox, monkeypatch):
    # given charges built without `captured`, which the version always returns
    monkeypatch.setattr(shapes, "charge", _without(shapes.charge, "captured"))

    violations, _ = _violations(sim, inbox, exercise(sim))

    assert violations
    assert all(re.search(r"\.captured: required field missing$", v) for v in violations), violations


@pytest.mark.parametrize(
    ("path", "change", "problem"),
    [
        pytest.param(("amount_due",), "remove", "required field missing", id="required-missing"),
        pytest.param(("paid",), True, "unknown field", id="removed-field-present"),
        pytest.param(("attempt_count",), "3", "expected an integer", id="wrong-type"),
        pytest.param(("status",), "settled", "is not one of", id="enum-value"),
        pytest.param(("total",), None, "not nullable", id="null-not-allowed"),
        pytest.param(
            ("lines", "data", 0, "pricing", "type"), "price", "is not one of", id="nested-enum"
        ),
        pytest.param(("issuer", "type"), "remove", "required field missing", id="nested-required"),
    ],
)
def test_each_kind_of_violation_is_caught(sim, path, change, problem):
    # given a real invoice, changed in the simulator's store
    client = stripe.StripeClient("sk_test_contract", base_addresses={"api": sim.base_url})
    customer = client.v1.customers.create(params={"email": "v@example.com"})
    price = client.v1.prices.create(
        params={
            "product_data": {"name": "P"},
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
        }
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.test/ok",
        }
    )
    sim.complete_checkout(session.id)
    invoice_id = client.v1.checkout.sessions.retrieve(session.id).invoice
    with sim.state.lock:
        node = sim.state.objects[invoice_id]
        for step in path[:-1]:
            node = node[step]
        if change == "remove":
            del node[path[-1]]
        else:
            node[path[-1]] = change
    checker = Checker()

    # when it is read back through the library and checked
    checker.check_response(client.v1.invoices.retrieve(invoice_id).last_response.data)

    # then exactly that field is reported
    dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
    assert len(checker.violations) == 1, checker.violations
    assert checker.violations[0].startswith(f"invoice.{dotted}: "), checker.violations
    assert problem in checker.violations[0]
