"""Helpers shared by the tests: a signed-up customer, signed Stripe webhooks, paid customers.

Tests and conftest files import from here; pytest advises against importing conftest.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from stripe_simulator import sign_payload

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_flows"
WEBHOOK_PATH = "/api/webhooks/stripe"
DAY = 86400
# dj-stripe accepts only keys shaped like Stripe's; the simulator accepts any sk_test_ key.
MIRROR_KEY = "sk_test_mirror0123456789abcdefghijKLMN"


def customer_client(api_key: str) -> APIClient:
    """An API client authenticated as a customer, with `X-API-Key`."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    return client


def staff_api_client(token: str = ADMIN_TOKEN) -> APIClient:
    """An API client authenticated as staff, with `Authorization: Bearer`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@dataclass(frozen=True)
class SignedUpCustomer:
    """A customer who signed up through the public API.

    `id` is the customer_id, `key` the raw API key, `license` the signed JWT, `body` the whole
    signup response (for tests of the response itself), `client` an API client holding `key`.
    """

    id: str
    key: str
    email: str
    license: str
    body: dict[str, Any] = field(repr=False, compare=False)
    client: APIClient = field(repr=False, compare=False)

    @classmethod
    def from_signup_response(cls, body: dict[str, Any]) -> SignedUpCustomer:
        return cls(
            id=body["customer"]["customer_id"],
            key=body["api_key"],
            email=body["customer"]["email"],
            license=body["license"]["jwt"],
            body=body,
            client=customer_client(body["api_key"]),
        )


def signup_customer(client: APIClient, number: int = 1, **fields: Any) -> SignedUpCustomer:
    """POST /api/customers/signup (asserting 201) for customer `number`: owner<number>@example.com
    of "Acme <number>" unless `fields` say otherwise."""
    body = {
        "email": f"owner{number}@example.com",
        "company_name": f"Acme {number}",
        "full_name": "Jo Owner",
        "password": "SecurePass123",
        **fields,
    }
    response = client.post("/api/customers/signup", body, format="json")
    assert response.status_code == 201, response.content
    return SignedUpCustomer.from_signup_response(response.json())


@dataclass(frozen=True)
class HttpAnswer:
    """An answer received over real HTTP, read like a test client's response."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def post_signed_webhook(
    to: Client | str,
    event: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
):
    """POST `event` to the Stripe webhook endpoint with a `Stripe-Signature` made with
    Stripe's scheme from `secret` (at `timestamp`, default now).

    `to` is a test client, or the live server's URL to go over real HTTP as Stripe does; the
    answer has `status_code` and `json()` either way. `event` may be the raw body, for
    payloads that are signed but not what json.dumps would write.
    """
    payload = event if isinstance(event, bytes) else json.dumps(event).encode()
    signature = sign_payload(payload, secret, timestamp)
    if not isinstance(to, str):
        return to.post(
            WEBHOOK_PATH,
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
    request = urllib.request.Request(
        f"{to}{WEBHOOK_PATH}",
        data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return HttpAnswer(response.status, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpAnswer(error.code, error.read())


def checkout(client: APIClient, customer_id: str, plan: str = "professional") -> dict[str, Any]:
    """Open a Stripe Checkout session for `plan` (asserting 200); returns the response JSON."""
    response = client.post(
        "/api/subscriptions/checkout", {"customer_id": customer_id, "plan": plan}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def paid_customer(
    signup, stripe_sim, plan: str = "professional", days_ago: float = 0.0
) -> SignedUpCustomer:
    """A customer (from the `signup` fixture) who paid for `plan` through the Stripe
    simulator, whose period started `days_ago` days ago on the simulator's clock."""
    stripe_sim.freeze_clock(int(time.time() - days_ago * DAY))
    customer = signup()
    session = checkout(customer.client, customer.id, plan)
    stripe_sim.complete_checkout(session["session_id"], "4242 4242 4242 4242")
    stripe_sim.wait_for_deliveries()
    return customer


def upgrade_later(
    stripe_sim, staff_client, customer_id: str, days: float, plan: str = "enterprise"
) -> None:
    """`days` on (on the simulator's clock), staff upgrade the customer to `plan` (asserting
    200): Stripe invoices the proration and its webhooks are delivered."""
    stripe_sim.advance_clock(int(days * DAY))
    response = staff_client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer_id, "new_plan": plan},
        format="json",
    )
    assert response.status_code == 200, response.content
    stripe_sim.wait_for_deliveries()


def upgraded_and_refunded(signup, sim, staff_client) -> SignedUpCustomer:
    """Checkout for professional, an upgrade to enterprise 10 days in (a proration invoice),
    then a refund of $10 more than the proration (it spans both payments)."""
    customer = paid_customer(signup, sim, "professional")
    upgrade_later(sim, staff_client, customer.id, days=10)
    proration = stripe_invoices_of(sim, customer.id)[0]["amount_paid"]
    refund = staff_client.post(
        "/api/subscriptions/refund",
        {"customer_id": customer.id, "amount": proration + 1000, "description": "goodwill"},
        format="json",
    )
    assert refund.status_code == 200, refund.content
    sim.wait_for_deliveries()
    return customer


def stripe_invoices_of(sim, customer_id: str) -> list[dict]:
    """The simulator's invoices of one of our customers, as Stripe holds them."""
    from customers.models import Customer  # models load once Django is set up

    stripe_customer = Customer.objects.get(customer_id=customer_id).stripe_customer_id
    return [i for i in sim.state.all("invoice") if i["customer"] == stripe_customer]


def half_up(amount: int, part: float, whole: float) -> int:
    """`amount × part / whole` rounded half-up to whole cents, as Stripe and the guide round."""
    exact = Decimal(amount) * Decimal(part) / Decimal(whole)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def period_days(customer_id: str) -> int:
    """Whole days of the customer's current period (Stripe bills calendar months: 28 to 31)."""
    from subscriptions.models import Subscription  # models load once Django is set up

    subscription = Subscription.objects.get(customer__customer_id=customer_id)
    length = subscription.current_period_end - subscription.current_period_start
    return round(length.total_seconds() / DAY)
