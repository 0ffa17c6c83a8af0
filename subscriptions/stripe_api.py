"""The only module that imports `stripe`: small typed functions over the Stripe API.

Every create or update passes an `idempotency_key` built by the caller from our own ids,
so a retried request never charges, refunds or cancels twice. Results are plain dicts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import stripe
from django.conf import settings
from django.core.cache import cache

from core.plans import PLANS

# Stripe's default: a signed webhook older than this is refused (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300
PRODUCT_DESCRIPTIONS = {
    "starter": "Up to 10 devices",
    "professional": "Up to 50 devices",
    "enterprise": "Unlimited devices",
}

logger = logging.getLogger(__name__)


class StripeNotConfigured(Exception):
    pass


class StripeError(Exception):
    """Stripe refused or failed. `user_message` is safe to show; `retryable` says whether
    the same request may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        retryable: bool = False,
        param: str = "",
    ) -> None:
        super().__init__(message)
        self.user_message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.param = param

    def is_missing(self, param: str) -> bool:
        """Stripe does not know the object named by `param` ("No such customer: ...")."""
        return self.code == "resource_missing" and self.param.startswith(param)


class WebhookSignatureError(Exception):
    pass


class WebhookPayloadError(Exception):
    """Signed by Stripe, but not an event we can read (not JSON, nested too deeply)."""


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    if not is_configured():
        raise StripeNotConfigured("STRIPE_SECRET_KEY is not set.")
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        # The library retries network errors and 409/429/5xx itself, with the same idempotency key.
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        # Short waits: a Stripe that accepts connections and never answers must not hold a web
        # worker past gunicorn's timeout (see worst_wait_seconds).
        http_client=stripe.RequestsClient(
            timeout=(settings.STRIPE_CONNECT_TIMEOUT_SECONDS, settings.STRIPE_READ_TIMEOUT_SECONDS)
        ),
    )


def global_client_configure() -> None:
    """dj-stripe calls Stripe through the library's global client, whose default waits 80 s per
    attempt: give it the same timeouts, retries and address as ours (the mirror calls this
    before each run, so a hanging Stripe holds a worker no longer than one of our calls)."""
    stripe.default_http_client = stripe.RequestsClient(
        timeout=(settings.STRIPE_CONNECT_TIMEOUT_SECONDS, settings.STRIPE_READ_TIMEOUT_SECONDS)
    )
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
    if settings.STRIPE_API_BASE:
        stripe.api_base = settings.STRIPE_API_BASE


# The library sleeps between retries: 0.5 s doubling, with jitter, at most this much in all
# for the retries we allow (stripe/_http_client.py: INITIAL_DELAY 0.5, MAX_DELAY 5).
_RETRY_SLEEP_CAP_SECONDS = 5.0


def worst_wait_seconds() -> float:
    """The longest one Stripe call can take before it gives up: every attempt timing out."""
    attempts = 1 + settings.STRIPE_MAX_NETWORK_RETRIES
    per_attempt = settings.STRIPE_CONNECT_TIMEOUT_SECONDS + settings.STRIPE_READ_TIMEOUT_SECONDS
    sleeps = sum(min(0.5 * 2**n, _RETRY_SLEEP_CAP_SECONDS) for n in range(attempts - 1))
    return attempts * per_attempt + sleeps


def _call(method, *args, idempotency_key: str | None = None, **params) -> dict:
    options = {"idempotency_key": idempotency_key} if idempotency_key else None
    try:
        result = method(*args, params=params or None, options=options)
    except stripe.APIConnectionError as exc:
        # The library's text names the Stripe address and the HTTP client's internals: logged
        # for operators, never shown to clients.
        logger.warning("Stripe could not be reached: %s", exc)
        raise StripeError(
            "Stripe could not be reached (network error or timeout)",
            code="stripe_unreachable",
            retryable=True,
        ) from exc
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None)
        raise StripeError(
            exc.user_message or str(exc),
            code=getattr(exc, "code", "") or "",
            http_status=status,
            retryable=isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
            or (status is not None and status >= 500),
            param=getattr(exc, "param", "") or "",
        ) from exc
    return result.to_dict()


def _all(method, **params) -> list[dict]:
    """Every item of a list endpoint, page by page (`starting_after`)."""
    found: list[dict] = []
    params = {"limit": 100, **params}
    while True:
        page = _call(method, **params)
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


# ---------------------------------------------------------------- customers
def ping() -> None:
    """One cheap read: raises StripeError (retryable while Stripe cannot be reached)."""
    _call(_client().v1.prices.list, limit=1)


def customer_create(*, customer_id: str, email: str, name: str, idempotency_key: str = "") -> str:
    client = _client()
    created = _call(
        client.v1.customers.create,
        idempotency_key=idempotency_key or f"customer-create:{customer_id}",
        email=email,
        name=name,
        metadata={"customer_id": customer_id},
    )
    return created["id"]


# ---------------------------------------------------------------- products and prices
def price_id_for_plan(plan: str, lookup_key: str) -> str:
    """STRIPE_PRICE_<PLAN> if set, else the active price with the plan's lookup key."""
    override = settings.STRIPE_PRICE_IDS.get(plan, "")
    if override:
        return override
    cache_key = f"stripe:price:{lookup_key}"
    if cached := cache.get(cache_key):
        return cached
    client = _client()
    prices = _call(client.v1.prices.list, lookup_keys=[lookup_key], active=True, limit=1)
    if not prices["data"]:
        raise StripeError(
            f"No Stripe price with lookup key {lookup_key}; run `manage.py stripe_setup`.",
            code="price_missing",
        )
    price_id = prices["data"][0]["id"]
    cache.set(cache_key, price_id, timeout=3600)
    return price_id


def price_cache_clear() -> None:
    """Forget the cached price ids (a Stripe account that lost them answers "No such price")."""
    keys = [plan.stripe_lookup_key for plan in PLANS.values() if plan.stripe_lookup_key]
    keys += [overage_lookup_key(meter) for meter in OVERAGE_METERS]
    cache.delete_many([f"stripe:price:{key}" for key in keys])


def price_ensure(
    *,
    lookup_key: str,
    product_name: str,
    description: str,
    unit_amount: int,
    recurring: dict | None = None,
) -> tuple[str, bool]:
    """The monthly USD price with `lookup_key`, made with its product if missing; (id, new)."""
    client = _client()
    existing = _call(client.v1.prices.list, lookup_keys=[lookup_key], limit=1)
    if existing["data"]:
        return existing["data"][0]["id"], False
    product = _call(
        client.v1.products.create,
        idempotency_key=f"setup-product:{lookup_key}",
        name=product_name,
        description=description,
    )
    price = _call(
        client.v1.prices.create,
        idempotency_key=f"setup-price:{lookup_key}",
        product=product["id"],
        currency="usd",
        unit_amount=unit_amount,
        recurring={"interval": "month", **(recurring or {})},
        lookup_key=lookup_key,
    )
    return price["id"], True


# ---------------------------------------------------------------- metered overage
# One Billing Meter and one metered price per overage meter of `usage.UsageBillingRecord`.
# The meter value is the overage in US cents and the price is 1 cent per unit: the cents are
# computed and rounded once, by us (README "Consumption billing"), and Stripe only sums them.
OVERAGE_METERS = {
    "mqtt_gb": "MQTT traffic overage",
    "http_gb": "HTTP traffic overage",
    "storage_gb_months": "Storage overage",
    "api_calls_thousands": "API calls overage",
    "extra_devices": "Extra devices",
}


def meter_event_name(meter: str) -> str:
    return f"iotistic_{meter}"


def overage_lookup_key(meter: str) -> str:
    return f"iotistic_overage_{meter}"


def _meters_by_event_name() -> dict[str, dict]:
    client = _client()
    found: dict[str, dict] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = _call(client.v1.billing.meters.list, **params)
        for meter in page["data"]:
            found.setdefault(meter["event_name"], meter)
        if not page.get("has_more") or not page["data"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def meter_ensure(*, event_name: str, display_name: str) -> tuple[str, bool]:
    """The Billing Meter summing `value` per `stripe_customer_id` for `event_name`, made if
    missing; (id, new). An event name belongs to one meter, so it is the meter's key."""
    existing = _meters_by_event_name().get(event_name)
    if existing is not None:
        if existing.get("status") not in (None, "active"):
            raise StripeError(
                f"Meter {existing['id']} ({event_name}) is {existing['status']}; reactivate it "
                "in the Stripe dashboard.",
                code="meter_inactive",
            )
        return existing["id"], False
    client = _client()
    meter = _call(
        client.v1.billing.meters.create,
        idempotency_key=f"setup-meter:{event_name}",
        display_name=display_name,
        event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"type": "by_id", "event_payload_key": "stripe_customer_id"},
        value_settings={"event_payload_key": "value"},
    )
    return meter["id"], True


def metered_price_ensure(
    *, lookup_key: str, meter_id: str, product_name: str, description: str
) -> tuple[str, bool]:
    """The monthly USD metered price of 1 cent per unit on `meter_id`, with its product,
    made if missing; (id, new). Found by lookup key, like the plans' prices."""
    return price_ensure(
        lookup_key=lookup_key,
        product_name=product_name,
        description=description,
        unit_amount=1,
        recurring={"usage_type": "metered", "meter": meter_id},
    )


def price_ids_by_lookup_key(lookup_keys: list[str]) -> dict[str, str]:
    """Active price ids of the given lookup keys (those that exist), cached for an hour."""
    found: dict[str, str] = {}
    missing = []
    for key in lookup_keys:
        cached = cache.get(f"stripe:price:{key}")
        if cached:
            found[key] = cached
        else:
            missing.append(key)
    if missing:
        client = _client()
        prices = _call(client.v1.prices.list, lookup_keys=missing, active=True, limit=100)
        for price in prices["data"]:
            found[price["lookup_key"]] = price["id"]
            cache.set(f"stripe:price:{price['lookup_key']}", price["id"], timeout=3600)
    return found


def meter_event_create(
    *, event_name: str, stripe_customer_id: str, value: int, identifier: str, timestamp: int
) -> dict:
    """Report `value` on a meter. Stripe refuses a second event with the same `identifier`
    (400 `duplicate_meter_event`, for at least 24 hours): that identifier is the dedup key,
    so no idempotency key is sent (a retry may carry another timestamp)."""
    client = _client()
    return _call(
        client.v1.billing.meter_events.create,
        event_name=event_name,
        payload={"stripe_customer_id": stripe_customer_id, "value": str(value)},
        identifier=identifier,
        timestamp=timestamp,
    )


# ---------------------------------------------------------------- checkout
def checkout_session_create(
    *,
    stripe_customer_id: str,
    price_id: str,
    success_url: str,
    cancel_url: str,
    customer_id: str,
    plan: str,
    idempotency_key: str,
    metered_price_ids: Sequence[str] = (),
) -> dict:
    """Subscribe to `price_id` (quantity 1) plus the metered prices (billed from meters, so
    they carry no quantity)."""
    client = _client()
    return _call(
        client.v1.checkout.sessions.create,
        idempotency_key=idempotency_key,
        mode="subscription",
        customer=stripe_customer_id,
        line_items=[
            {"price": price_id, "quantity": 1},
            *({"price": metered} for metered in metered_price_ids),
        ],
        success_url=success_url,
        cancel_url=cancel_url,
        client_reference_id=customer_id,
        metadata={"customer_id": customer_id, "plan": plan},
        subscription_data={"metadata": {"customer_id": customer_id, "plan": plan}},
    )


def checkout_sessions_open(*, stripe_customer_id: str) -> list[dict]:
    """The customer's Checkout Sessions that can still be paid."""
    client = _client()
    return _all(client.v1.checkout.sessions.list, customer=stripe_customer_id, status="open")


# ---------------------------------------------------------------- subscriptions
# Statuses of a subscription that bills (or may bill again) the customer.
ENDED_STATUSES = ("canceled", "incomplete_expired")


def subscriptions_live(*, stripe_customer_id: str) -> list[dict]:
    """The customer's subscriptions that are not over, newest first."""
    client = _client()
    found = _all(client.v1.subscriptions.list, customer=stripe_customer_id, status="all")
    return [sub for sub in found if sub.get("status") not in ENDED_STATUSES]


def subscription_retrieve(subscription_id: str) -> dict:
    client = _client()
    return _call(client.v1.subscriptions.retrieve, subscription_id)


def subscription_change_price(
    *, subscription_id: str, item_id: str, price_id: str, plan: str, idempotency_key: str
) -> dict:
    """Move the subscription to another price now; Stripe prorates and invoices the difference."""
    client = _client()
    return _call(
        client.v1.subscriptions.update,
        subscription_id,
        idempotency_key=idempotency_key,
        items=[{"id": item_id, "price": price_id}],
        proration_behavior="always_invoice",
        metadata={"plan": plan},
    )


def subscription_set_cancel_at_period_end(
    *, subscription_id: str, cancel: bool, idempotency_key: str
) -> dict:
    client = _client()
    return _call(
        client.v1.subscriptions.update,
        subscription_id,
        idempotency_key=idempotency_key,
        cancel_at_period_end=cancel,
    )


def subscription_cancel(*, subscription_id: str, idempotency_key: str, comment: str = "") -> dict:
    """Cancel now; `comment` is kept on the subscription (`cancellation_details.comment`)."""
    client = _client()
    details = {"cancellation_details": {"comment": comment}} if comment else {}
    try:
        return _call(
            client.v1.subscriptions.cancel,
            subscription_id,
            idempotency_key=idempotency_key,
            **details,
        )
    except StripeError as exc:
        # Already canceled (e.g. a retry after our crash, with a new key): that is the goal state.
        if exc.http_status == 400:
            current = subscription_retrieve(subscription_id)
            if current.get("status") == "canceled":
                return current
        raise


# ---------------------------------------------------------------- payments and refunds
# An invoice names none of its payments (API 2025-03-31 and later): they are InvoicePayments,
# listed by invoice or expanded as `invoice.payments` (never inside webhook events).
def invoice_payments_paid(invoice_id: str) -> list[dict]:
    """The successful payments of one invoice."""
    client = _client()
    return _all(client.v1.invoice_payments.list, invoice=invoice_id, status="paid")


def invoices_paid_with_payments(*, subscription_id: str, created_from: int) -> list[dict]:
    """The subscription's paid invoices created at or after `created_from` (Stripe epoch
    seconds), each with its payments expanded."""
    client = _client()
    return _all(
        client.v1.invoices.list,
        subscription=subscription_id,
        status="paid",
        created={"gte": created_from},
        expand=["data.payments"],
    )


def payment_reference(invoice_payment: dict) -> dict:
    """What a refund of an InvoicePayment is made against: its PaymentIntent, or its Charge
    when it was paid by a charge without one."""
    payment = invoice_payment.get("payment") or {}
    for kind in ("payment_intent", "charge"):
        value = payment.get(kind)
        if isinstance(value, dict):
            value = value.get("id")
        if value:
            return {kind: value}
    return {}


def refund_create(
    *, reference: dict, amount: int, reason: str, metadata: dict, idempotency_key: str
) -> dict:
    client = _client()
    return _call(
        client.v1.refunds.create,
        idempotency_key=idempotency_key,
        amount=amount,
        reason=reason,
        metadata=metadata,
        **reference,
    )


def refunds_for_charge(charge_id: str) -> list[dict]:
    client = _client()
    return _call(client.v1.refunds.list, charge=charge_id, limit=100)["data"]


# ---------------------------------------------------------------- webhooks
def webhook_event_from_request(payload: bytes, signature_header: str | None) -> dict:
    """Verify a webhook's `Stripe-Signature` against each configured secret; return the event.

    STRIPE_WEBHOOK_SECRET may list several secrets (comma-separated) while one is
    being rotated; a signature from any of them is accepted.
    """
    if not signature_header:
        raise WebhookSignatureError("Missing Stripe-Signature header.")
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets:
        raise WebhookSignatureError("No STRIPE_WEBHOOK_SECRET is configured; refusing all events.")
    text = payload.decode("utf-8", errors="replace")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature_header, secret.strip(), WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            continue
        break
    else:
        raise WebhookSignatureError("Invalid Stripe-Signature for every configured secret.")
    try:
        event: Any = json.loads(text)
    except ValueError as exc:
        raise WebhookPayloadError("Signed payload is not JSON.") from exc
    except RecursionError as exc:
        raise WebhookPayloadError("Signed payload is nested too deeply to read.") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise WebhookPayloadError("Signed payload is not a Stripe event.")
    return event
