"""Catalogue-style endpoints: customers, products, prices, meters, meter events, checkout creation.

Each handler takes the store and the decoded form params (plus path ids) and returns the stored
object; the HTTP layer renders it. Unknown params are ignored rather than rejected, so the app
can send fields the simulator does not model (``automatic_tax``...) without breaking.
"""

from __future__ import annotations

from typing import Any

from .state import Obj, Store, StripeError, diff, list_object, public

PERIOD_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}
# Stripe test cards -> (brand, decline code or None). Anything else is "incorrect_number".
CARDS: dict[str, tuple[str, str | None]] = {
    "4242424242424242": ("visa", None),
    "5555555555554444": ("mastercard", None),
    "378282246310005": ("amex", None),
    "4000000000000002": ("visa", "generic_decline"),
    "4000000000009995": ("visa", "insufficient_funds"),
    "4000000000000069": ("visa", "expired_card"),
}
# Stripe's magic test PaymentMethod ids, usable wherever a payment method id is accepted.
MAGIC_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
}


# ---------------------------------------------------------------- param helpers
def get_int(params: Obj, key: str, default: int | None = None, *, required: bool = False) -> Any:
    """Form values are strings; Stripe answers a bad integer with ``parameter_invalid_integer``."""
    raw = params.get(key)
    if raw in (None, ""):
        if required:
            raise StripeError(
                f"Missing required param: {key}.", code="parameter_missing", param=key
            )
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeError(
            f"Invalid integer: {raw}", code="parameter_invalid_integer", param=key
        ) from None


def get_str(params: Obj, key: str, *, required: bool = False) -> Any:
    value = params.get(key)
    if required and value in (None, ""):
        raise StripeError(f"Missing required param: {key}.", code="parameter_missing", param=key)
    return value if value != "" else None


def get_bool(params: Obj, key: str, default: bool = False) -> bool:
    value = params.get(key)
    return default if value in (None, "") else str(value).lower() == "true"


def merge_metadata(current: Obj, update: Any) -> Obj:
    """Stripe semantics: ``metadata=""`` clears everything, ``metadata[k]=""`` deletes one key."""
    if update is None:
        return current
    if not isinstance(update, dict):
        return {}
    merged = {**current, **update}
    return {k: str(v) for k, v in merged.items() if v != ""}


def one_of(params: Obj, key: str, allowed: tuple[str, ...], default: str | None = None) -> Any:
    value = params.get(key) or default
    if value is not None and value not in allowed:
        raise StripeError(
            f"Invalid {key}: must be one of {', '.join(allowed)}",
            code="parameter_invalid_string",
            param=key,
        )
    return value


def period_end(start: int, price: Obj) -> int:
    """Billing periods use fixed lengths (month = 30 days, year = 365 days), not calendar months."""
    recurring = price["recurring"]
    return start + PERIOD_SECONDS[recurring["interval"]] * recurring["interval_count"]


# ---------------------------------------------------------------- customers & payment methods
def create_payment_method(s: Store, card_number: str, customer: str | None) -> Obj:
    """A card PaymentMethod; the full number is kept privately to decide charge outcomes."""
    number = "".join(card_number.split())
    if number not in CARDS:
        raise StripeError(
            "Your card number is incorrect.",
            status=402,
            type="card_error",
            code="incorrect_number",
            param="card_number",
        )
    card = {
        "brand": CARDS[number][0],
        "last4": number[-4:],
        "exp_month": 12,
        "exp_year": 2034,
        "funding": "credit",
        "country": "US",
    }
    return s.add(
        "payment_method",
        "pm_",
        {
            "type": "card",
            "card": card,
            "customer": customer,
            "billing_details": {},
            "_number": number,
        },
    )


def resolve_payment_method(s: Store, ref: Any, customer: str | None, param: str) -> Obj | None:
    """Accept a stored ``pm_`` id or one of Stripe's magic test ids (``pm_card_visa``...)."""
    if ref in (None, ""):
        return None
    if ref in MAGIC_PAYMENT_METHODS:
        return create_payment_method(s, MAGIC_PAYMENT_METHODS[ref], customer)
    pm = s.get(ref, "payment_method", param)
    pm["customer"] = pm["customer"] or customer
    return pm


def create_customer(s: Store, p: Obj) -> Obj:
    customer = s.add(
        "customer",
        "cus_",
        {
            "email": get_str(p, "email"),
            "name": get_str(p, "name"),
            "description": get_str(p, "description"),
            "phone": get_str(p, "phone"),
            "balance": 0,
            "currency": None,
            "delinquent": False,
            "default_source": None,
            "invoice_settings": {"default_payment_method": None},
            "metadata": merge_metadata({}, p.get("metadata")),
        },
    )
    _apply_customer_payment_method(s, customer, p)
    s.emit("customer.created", customer)
    return customer


def _apply_customer_payment_method(s: Store, customer: Obj, p: Obj) -> None:
    pm = resolve_payment_method(s, p.get("payment_method"), customer["id"], "payment_method")
    default = (p.get("invoice_settings") or {}).get("default_payment_method")
    if default in MAGIC_PAYMENT_METHODS and pm is not None:
        default = pm["id"]
    default_pm = resolve_payment_method(
        s, default, customer["id"], "invoice_settings[default_payment_method]"
    )
    if default_pm is not None:
        customer["invoice_settings"]["default_payment_method"] = default_pm["id"]


def update_customer(s: Store, p: Obj, customer_id: str) -> Obj:
    customer = s.get(customer_id, "customer")
    before = public(customer)
    for key in ("email", "name", "description", "phone"):
        if key in p:
            customer[key] = get_str(p, key)
    customer["metadata"] = merge_metadata(customer["metadata"], p.get("metadata"))
    _apply_customer_payment_method(s, customer, p)
    s.emit("customer.updated", customer, diff(before, customer))
    return customer


def delete_customer(s: Store, p: Obj, customer_id: str) -> Obj:
    customer = s.get(customer_id, "customer")
    s.emit("customer.deleted", customer)
    customer["deleted"] = True
    return {"id": customer_id, "object": "customer", "deleted": True}


def retrieve_customer(s: Store, p: Obj, customer_id: str) -> Obj:
    """Deleted customers still retrieve (as a stub with ``deleted: true``), like on Stripe."""
    customer = s.objects.get(customer_id)
    if customer is not None and customer["object"] == "customer" and customer.get("deleted"):
        return {"id": customer_id, "object": "customer", "deleted": True}
    return s.get(customer_id, "customer")


# ---------------------------------------------------------------- products & prices
def create_product(s: Store, p: Obj) -> Obj:
    if p.get("id") in s.objects:
        raise StripeError("Product already exists.", code="resource_already_exists", param="id")
    return s.add(
        "product",
        "prod_",
        {
            "name": get_str(p, "name", required=True),
            "description": get_str(p, "description"),
            "active": get_bool(p, "active", True),
            "default_price": None,
            "type": "service",
            "updated": s.now(),
            "metadata": merge_metadata({}, p.get("metadata")),
        },
        object_id=get_str(p, "id"),
    )


def update_product(s: Store, p: Obj, product_id: str) -> Obj:
    product = s.get(product_id, "product")
    for key in ("name", "description"):
        if key in p:
            product[key] = get_str(p, key)
    product["active"] = get_bool(p, "active", product["active"])
    product["metadata"] = merge_metadata(product["metadata"], p.get("metadata"))
    product["updated"] = s.now()
    return product


def _claim_lookup_key(s: Store, p: Obj, price_id: str | None) -> Any:
    """Lookup keys are unique; ``transfer_lookup_key=true`` moves one from its current price."""
    key = get_str(p, "lookup_key")
    holder = next((x for x in s.all("price") if key and x["lookup_key"] == key), None)
    if holder is not None and holder["id"] != price_id:
        if not get_bool(p, "transfer_lookup_key"):
            raise StripeError(
                f"A price (`{holder['id']}`) already uses that lookup key.",
                code="lookup_key_already_exists",
                param="lookup_key",
            )
        holder["lookup_key"] = None
    return key


def create_price(s: Store, p: Obj) -> Obj:
    currency = (get_str(p, "currency", required=True) or "").lower()
    unit_amount = get_int(p, "unit_amount", required=True)
    if p.get("product_data"):
        product_id = create_product(s, p["product_data"])["id"]
    else:
        product_id = s.get(get_str(p, "product", required=True), "product", "product")["id"]
    recurring = None
    if p.get("recurring"):
        r = p["recurring"]
        usage_type = one_of(r, "usage_type", ("licensed", "metered"), "licensed")
        meter = get_str(r, "meter")
        if usage_type == "metered":
            meter = s.get(get_str(r, "meter", required=True), "billing.meter", "recurring[meter]")
            meter = meter["id"]
        get_str(r, "interval", required=True)
        recurring = {
            "interval": one_of(r, "interval", tuple(PERIOD_SECONDS)),
            "interval_count": get_int(r, "interval_count", 1),
            "usage_type": usage_type,
            "meter": meter,
            "aggregate_usage": None,
            "trial_period_days": None,
        }
    price = s.add(
        "price",
        "price_",
        {
            "active": get_bool(p, "active", True),
            "currency": currency,
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
            "product": product_id,
            "recurring": recurring,
            "type": "recurring" if recurring else "one_time",
            "billing_scheme": "per_unit",
            "lookup_key": _claim_lookup_key(s, p, None),
            "nickname": get_str(p, "nickname"),
            "tax_behavior": "unspecified",
            "metadata": merge_metadata({}, p.get("metadata")),
        },
    )
    s.emit("price.created", price)
    return price


def update_price(s: Store, p: Obj, price_id: str) -> Obj:
    price = s.get(price_id, "price")
    if "lookup_key" in p:
        price["lookup_key"] = _claim_lookup_key(s, p, price_id)
    if "nickname" in p:
        price["nickname"] = get_str(p, "nickname")
    price["active"] = get_bool(p, "active", price["active"])
    price["metadata"] = merge_metadata(price["metadata"], p.get("metadata"))
    return price


# ---------------------------------------------------------------- billing meters
def create_meter(s: Store, p: Obj) -> Obj:
    event_name = get_str(p, "event_name", required=True)
    if any(m["event_name"] == event_name for m in s.all("billing.meter")):
        raise StripeError(
            f"An active meter already uses event_name '{event_name}'.", param="event_name"
        )
    aggregation = p.get("default_aggregation") or {}
    return s.add(
        "billing.meter",
        "mtr_",
        {
            "display_name": get_str(p, "display_name", required=True),
            "event_name": event_name,
            "default_aggregation": {
                "formula": one_of(aggregation, "formula", ("sum", "count", "last"), "sum")
            },
            "customer_mapping": {
                "event_payload_key": "stripe_customer_id",
                "type": "by_id",
                **(p.get("customer_mapping") or {}),
            },
            "value_settings": {"event_payload_key": "value", **(p.get("value_settings") or {})},
            "event_time_window": get_str(p, "event_time_window"),
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": s.now(),
        },
    )


def create_meter_event(s: Store, p: Obj) -> Obj:
    """Validate eagerly (Stripe reports some of this asynchronously) so app bugs surface in tests.

    A repeated ``identifier`` within 24h is rejected with 400 ``duplicate_meter_event`` and
    ``Stripe-Should-Retry: false``, which is how Stripe answers a replayed identifier.
    """
    event_name = get_str(p, "event_name", required=True)
    meter = next((m for m in s.all("billing.meter") if m["event_name"] == event_name), None)
    if meter is None:
        raise StripeError(
            f"No active meter found with event_name '{event_name}'.",
            code="resource_missing",
            param="event_name",
        )
    payload = p.get("payload") if isinstance(p.get("payload"), dict) else {}
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer = s.get(payload.get(customer_key), "customer", f"payload[{customer_key}]")
    try:
        value = float(payload.get(value_key, ""))
    except ValueError:
        raise StripeError(
            f"payload[{value_key}] must be a number.", param=f"payload[{value_key}]"
        ) from None
    now = s.now()
    timestamp = get_int(p, "timestamp", now)
    if not now - 35 * 86_400 <= timestamp <= now + 300:
        raise StripeError(
            "Timestamp must be within the past 35 days or 5 minutes in the future.",
            code="timestamp_outside_allowed_window",
            param="timestamp",
        )
    identifier = get_str(p, "identifier") or s.new_id("", 32)
    if any(e["identifier"] == identifier and now - e["created"] < 86_400 for e in s.meter_events):
        raise StripeError(
            f"An event already exists with identifier {identifier}.",
            code="duplicate_meter_event",
            param="identifier",
            should_retry=False,
        )
    event = {
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
        "_meter": meter["id"],
        "_customer": customer["id"],
        "_value": value,
    }
    s.meter_events.append(event)
    return event


def meter_total(
    s: Store, customer: str, meter: str, start: int | None = None, end: int | None = None
) -> float:
    """Aggregate a customer's events for a meter (id or event_name) over ``[start, end)``."""
    found = next((m for m in s.all("billing.meter") if meter in (m["id"], m["event_name"])), None)
    if found is None:
        raise missing_meter(meter)
    values = [
        e["_value"]
        for e in s.meter_events
        if e["_meter"] == found["id"]
        and e["_customer"] == customer
        and (start is None or e["timestamp"] >= start)
        and (end is None or e["timestamp"] < end)
    ]
    formula = found["default_aggregation"]["formula"]
    if formula == "count":
        return float(len(values))
    if formula == "last":
        return values[-1] if values else 0.0
    return float(sum(values))


def missing_meter(meter: str) -> StripeError:
    return StripeError(f"No such meter: '{meter}'", status=404, code="resource_missing")


def meter_event_summaries(s: Store, p: Obj, meter_id: str) -> Obj:
    meter = s.get(meter_id, "billing.meter")
    customer = s.get(get_str(p, "customer", required=True), "customer", "customer")["id"]
    start = get_int(p, "start_time", required=True)
    end = get_int(p, "end_time", required=True)
    summary = {
        "id": s.new_id("mtrusg_"),
        "object": "billing.meter_event_summary",
        "aggregated_value": meter_total(s, customer, meter_id, start, end),
        "start_time": start,
        "end_time": end,
        "meter": meter["id"],
        "livemode": False,
    }
    return list_object([summary], f"/v1/billing/meters/{meter_id}/event_summaries")


# ---------------------------------------------------------------- checkout sessions
def create_checkout_session(s: Store, p: Obj) -> Obj:
    """Only ``mode=subscription`` is modelled; the returned ``url`` is the simulator's own page."""
    if p.get("mode") != "subscription":
        raise StripeError("The simulator only supports mode=subscription.", param="mode")
    if not isinstance(p.get("line_items"), list) or not p["line_items"]:
        raise StripeError(
            "Missing required param: line_items.", code="parameter_missing", param="line_items"
        )
    customer = get_str(p, "customer")
    if customer:
        s.get(customer, "customer", "customer")
    lines, total, currency = [], 0, None
    for i, item in enumerate(p["line_items"]):
        price = s.get(get_str(item, "price", required=True), "price", f"line_items[{i}][price]")
        if price["type"] != "recurring":
            raise StripeError(
                "mode=subscription requires recurring prices.", param=f"line_items[{i}][price]"
            )
        metered = price["recurring"]["usage_type"] == "metered"
        qty = None if metered else get_int(item, "quantity", 1)
        amount = 0 if metered else price["unit_amount"] * qty
        total, currency = total + amount, price["currency"]
        lines.append(
            {
                "id": s.new_id("li_"),
                "object": "item",
                "price": price,
                "quantity": qty,
                "amount_subtotal": amount,
                "amount_total": amount,
                "currency": currency,
                "description": s.objects[price["product"]]["name"],
            }
        )
    sub_data = p.get("subscription_data") or {}
    session = s.add(
        "checkout.session",
        "cs_test_",
        {
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "customer": customer,
            "customer_email": get_str(p, "customer_email"),
            "customer_details": None,
            "client_reference_id": get_str(p, "client_reference_id"),
            "success_url": get_str(p, "success_url"),
            "cancel_url": get_str(p, "cancel_url"),
            "expires_at": s.now() + 86_400,
            "subscription": None,
            "invoice": None,
            "payment_intent": None,
            "amount_subtotal": total,
            "amount_total": total,
            "currency": currency,
            "metadata": merge_metadata({}, p.get("metadata")),
            "_line_items": list_object(lines, "/v1/checkout/sessions/line_items"),
            "_subscription_data": {
                "metadata": merge_metadata({}, sub_data.get("metadata")),
                "trial_period_days": get_int(sub_data, "trial_period_days"),
            },
        },
    )
    session["url"] = f"{s.base_url}/checkout/{session['id']}"
    return session


def expire_checkout_session(s: Store, p: Obj, session_id: str) -> Obj:
    session = s.get(session_id, "checkout.session")
    if session["status"] != "open":
        raise StripeError("Only open Checkout Sessions can be expired.", param="session")
    session["status"] = "expired"
    s.emit("checkout.session.expired", session)
    return session
