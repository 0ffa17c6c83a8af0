"""Catalogue-style endpoints: customers, products, prices, meters, meter events, checkout creation.

Each handler takes the store and the decoded form params (plus path ids) and returns the stored
object; the HTTP layer renders it. Unknown params are ignored rather than rejected, so the app
can send fields the simulator does not model (``automatic_tax``...) without breaking.
"""

from __future__ import annotations

from typing import Any

from .state import ApiError, Obj, Store, diff, list_object, public

# Fixed period lengths (not calendar months) keep the proration arithmetic easy to check.
PERIOD_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}
# Stripe test cards -> (brand, decline code or None). Any other number is "incorrect_number".
CARDS: dict[str, tuple[str, str | None]] = {
    "4242424242424242": ("visa", None),
    "5555555555554444": ("mastercard", None),
    "4000000000000002": ("visa", "generic_decline"),
    "4000000000009995": ("visa", "insufficient_funds"),
}
# Stripe's magic test PaymentMethod ids, accepted wherever a payment method id is.
MAGIC_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
}


# ---------------------------------------------------------------- param helpers
def missing_param(key: str) -> ApiError:
    return ApiError(f"Missing required param: {key}.", key, "parameter_missing")


def get_int(params: Obj, key: str, default: int | None = None, *, required: bool = False) -> Any:
    """Form values are strings; Stripe answers a bad integer with ``parameter_invalid_integer``."""
    raw = params.get(key)
    if raw in (None, ""):
        if required:
            raise missing_param(key)
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(f"Invalid integer: {raw}", key, "parameter_invalid_integer") from None


def get_str(params: Obj, key: str, *, required: bool = False) -> Any:
    value = params.get(key)
    if required and value in (None, ""):
        raise missing_param(key)
    return value if value != "" else None


def get_bool(params: Obj, key: str, default: bool = False) -> bool:
    value = params.get(key)
    return default if value in (None, "") else str(value).lower() == "true"


def one_of(params: Obj, key: str, allowed: tuple[str, ...], default: str | None = None) -> Any:
    value = params.get(key) or default
    if value is not None and value not in allowed:
        message = f"Invalid {key}: must be one of {', '.join(allowed)}"
        raise ApiError(message, key, "parameter_invalid_string")
    return value


def merge_metadata(current: Obj, update: Any) -> Obj:
    """Stripe semantics: ``metadata=""`` clears everything, ``metadata[k]=""`` deletes one key."""
    if update is None:
        return current
    merged = {**current, **update} if isinstance(update, dict) else {}
    return {k: str(v) for k, v in merged.items() if v != ""}


def period_end(start: int, price: Obj) -> int:
    recurring = price["recurring"]
    return start + PERIOD_SECONDS[recurring["interval"]] * recurring["interval_count"]


def recurring_items(s: Store, raw: Any, param: str) -> list[tuple[Obj, int | None]]:
    """``[{price, quantity}]`` for checkout and subscriptions: recurring, one shared interval."""
    if not isinstance(raw, list) or not raw:
        raise missing_param(param)
    items = []
    for i, item in enumerate(raw):
        price = s.get(get_str(item, "price", required=True), "price", f"{param}[{i}][price]")
        if price["type"] != "recurring":
            raise ApiError("Subscriptions need recurring prices.", f"{param}[{i}][price]")
        metered = price["recurring"]["usage_type"] == "metered"
        items.append((price, None if metered else get_int(item, "quantity", 1)))
    if len({(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p, _ in items}) > 1:
        raise ApiError("All prices on a subscription must share one interval.", param)
    return items


# ---------------------------------------------------------------- customers & payment methods
def create_payment_method(s: Store, card_number: str, customer: str | None) -> Obj:
    """A card PaymentMethod; the full number is kept privately to decide charge outcomes."""
    number = "".join(card_number.split())
    if number not in CARDS:
        message = "Your card number is incorrect."
        raise ApiError(message, "card_number", "incorrect_number", status=402, type="card_error")
    card = {"brand": CARDS[number][0], "last4": number[-4:], "exp_month": 12, "exp_year": 2034}
    fields = {"type": "card", "card": card, "customer": customer, "_number": number}
    return s.add("payment_method", "pm_", fields)


def resolve_payment_method(s: Store, ref: Any, customer: str | None, param: str) -> Obj | None:
    """Accept a stored ``pm_`` id or one of Stripe's magic test ids (``pm_card_visa``...)."""
    if ref in (None, ""):
        return None
    if ref in MAGIC_PAYMENT_METHODS:
        return create_payment_method(s, MAGIC_PAYMENT_METHODS[ref], customer)
    pm = s.get(ref, "payment_method", param)
    pm["customer"] = pm["customer"] or customer
    return pm


def _set_customer_fields(s: Store, customer: Obj, p: Obj) -> None:
    for key in ("email", "name", "description"):
        if key in p:
            customer[key] = get_str(p, key)
    customer["metadata"] = merge_metadata(customer["metadata"], p.get("metadata"))
    param = "invoice_settings[default_payment_method]"
    pm_ref = (p.get("invoice_settings") or {}).get("default_payment_method")
    pm = resolve_payment_method(s, pm_ref, customer["id"], param)
    if pm is not None:
        customer["invoice_settings"]["default_payment_method"] = pm["id"]


def create_customer(s: Store, p: Obj) -> Obj:
    customer = s.add("customer", "cus_", {"email": None, "name": None, "description": None})
    customer.update(balance=0, invoice_settings={"default_payment_method": None})
    _set_customer_fields(s, customer, p)
    s.emit("customer.created", customer)
    return customer


def update_customer(s: Store, p: Obj, customer_id: str) -> Obj:
    customer = s.get(customer_id, "customer")
    before = public(customer)
    _set_customer_fields(s, customer, p)
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
    """Custom ids are allowed (Stripe allows them for products), which makes seeding idempotent."""
    if p.get("id") in s.objects:
        raise ApiError("Product already exists.", "id", "resource_already_exists")
    name = get_str(p, "name", required=True)
    fields = {"name": name, "description": get_str(p, "description"), "type": "service"}
    fields.update(active=get_bool(p, "active", True), updated=s.now())
    fields["metadata"] = merge_metadata({}, p.get("metadata"))
    return s.add("product", "prod_", fields, object_id=get_str(p, "id"))


def _claim_lookup_key(s: Store, p: Obj) -> Any:
    """Lookup keys are unique; ``transfer_lookup_key=true`` moves one from its current price."""
    key = get_str(p, "lookup_key")
    holder = next((x for x in s.all("price") if key and x["lookup_key"] == key), None)
    if holder is not None:
        if not get_bool(p, "transfer_lookup_key"):
            message = f"A price (`{holder['id']}`) already uses that lookup key."
            raise ApiError(message, "lookup_key", "lookup_key_already_exists")
        holder["lookup_key"] = None
    return key


def create_price(s: Store, p: Obj) -> Obj:
    currency = get_str(p, "currency", required=True).lower()
    unit_amount = get_int(p, "unit_amount", required=True)
    if p.get("product_data"):
        product = create_product(s, p["product_data"])
    else:
        product = s.get(get_str(p, "product", required=True), "product", "product")
    recurring = p.get("recurring") or None
    if recurring is not None:
        usage_type = one_of(recurring, "usage_type", ("licensed", "metered"), "licensed")
        meter = get_str(recurring, "meter", required=usage_type == "metered")
        if meter:
            meter = s.get(meter, "billing.meter", "recurring[meter]")["id"]
        get_str(recurring, "interval", required=True)
        recurring = {
            "interval": one_of(recurring, "interval", tuple(PERIOD_SECONDS)),
            "interval_count": get_int(recurring, "interval_count", 1),
            "usage_type": usage_type,
            "meter": meter,
        }
    fields = {"currency": currency, "unit_amount": unit_amount, "product": product["id"]}
    fields.update(recurring=recurring, type="recurring" if recurring else "one_time")
    fields.update(active=get_bool(p, "active", True), nickname=get_str(p, "nickname"))
    fields.update(lookup_key=_claim_lookup_key(s, p), billing_scheme="per_unit")
    fields["metadata"] = merge_metadata({}, p.get("metadata"))
    return s.add("price", "price_", fields)


# ---------------------------------------------------------------- billing meters
def create_meter(s: Store, p: Obj) -> Obj:
    event_name = get_str(p, "event_name", required=True)
    if any(m["event_name"] == event_name for m in s.all("billing.meter")):
        raise ApiError(f"An active meter already uses event_name '{event_name}'.", "event_name")
    aggregation = p.get("default_aggregation") or {}
    customer_mapping = {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    fields = {
        "display_name": get_str(p, "display_name", required=True),
        "event_name": event_name,
        "default_aggregation": {
            "formula": one_of(aggregation, "formula", ("sum", "count", "last"), "sum")
        },
        "customer_mapping": {**customer_mapping, **(p.get("customer_mapping") or {})},
        "value_settings": {"event_payload_key": "value", **(p.get("value_settings") or {})},
        "status": "active",
        "updated": s.now(),
    }
    return s.add("billing.meter", "mtr_", fields)


def create_meter_event(s: Store, p: Obj) -> Obj:
    """Validate eagerly (Stripe reports some of this asynchronously) so app bugs surface in tests.

    A repeated ``identifier`` within 24h gets 400 ``duplicate_meter_event`` with
    ``Stripe-Should-Retry: false``, as Stripe rejects a replayed identifier.
    """
    event_name = get_str(p, "event_name", required=True)
    meter = next((m for m in s.all("billing.meter") if m["event_name"] == event_name), None)
    if meter is None:
        message = f"No active meter found with event_name '{event_name}'."
        raise ApiError(message, "event_name", "resource_missing")
    payload = p.get("payload") if isinstance(p.get("payload"), dict) else {}
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer = s.get(payload.get(customer_key), "customer", f"payload[{customer_key}]")
    try:
        value = float(payload.get(value_key, ""))
    except ValueError:
        raise ApiError(f"payload[{value_key}] must be a number.", f"payload[{value_key}]") from None
    now = s.now()
    identifier = get_str(p, "identifier") or s.new_id("", 32)
    if any(e["identifier"] == identifier and now - e["created"] < 86_400 for e in s.meter_events):
        message = f"An event already exists with identifier {identifier}."
        raise ApiError(message, "identifier", "duplicate_meter_event", should_retry=False)
    event = {"object": "billing.meter_event", "created": now, "event_name": event_name}
    event.update(identifier=identifier, livemode=False, payload=payload)
    event.update(timestamp=get_int(p, "timestamp", now))
    event.update(_meter=meter["id"], _customer=customer["id"], _value=value)
    s.meter_events.append(event)
    return event


def meter_total(
    s: Store, customer: str, meter: str, start: int | None = None, end: int | None = None
) -> float:
    """Aggregate a customer's events for a meter (id or event_name) over ``[start, end)``."""
    found = next((m for m in s.all("billing.meter") if meter in (m["id"], m["event_name"])), None)
    if found is None:
        raise ApiError(f"No such meter: '{meter}'", None, "resource_missing", status=404)
    values = [
        e["_value"]
        for e in s.meter_events
        if (e["_meter"], e["_customer"]) == (found["id"], customer)
        and (start is None or e["timestamp"] >= start)
        and (end is None or e["timestamp"] < end)
    ]
    formula = found["default_aggregation"]["formula"]
    if formula == "count":
        return float(len(values))
    if formula == "last":
        return values[-1] if values else 0.0
    return float(sum(values))


# ---------------------------------------------------------------- checkout sessions
def create_checkout_session(s: Store, p: Obj) -> Obj:
    """Only ``mode=subscription`` is modelled; the returned ``url`` is the simulator's own page."""
    if p.get("mode") != "subscription":
        raise ApiError("The simulator only supports mode=subscription.", "mode")
    customer = get_str(p, "customer")
    if customer:
        s.get(customer, "customer", "customer")
    lines = []
    for price, qty in recurring_items(s, p.get("line_items"), "line_items"):
        amount = price["unit_amount"] * qty if qty else 0
        line = {"id": s.new_id("li_"), "object": "item", "price": price, "quantity": qty}
        line.update(amount_total=amount, currency=price["currency"])
        line["description"] = s.objects[price["product"]]["name"]
        lines.append(line)
    sub_data = p.get("subscription_data") or {}
    total = sum(line["amount_total"] for line in lines)
    fields = {
        "mode": "subscription",
        "status": "open",
        "payment_status": "unpaid",
        "customer": customer,
        "customer_email": get_str(p, "customer_email"),
        "client_reference_id": get_str(p, "client_reference_id"),
        "success_url": get_str(p, "success_url"),
        "cancel_url": get_str(p, "cancel_url"),
        "expires_at": s.now() + 86_400,
        "subscription": None,
        "invoice": None,
        "amount_total": total,
        "currency": lines[0]["currency"],
        "metadata": merge_metadata({}, p.get("metadata")),
        "_line_items": list_object(lines, "/v1/checkout/sessions/line_items"),
        "_subscription_data": {
            "metadata": merge_metadata({}, sub_data.get("metadata")),
            "trial_period_days": get_int(sub_data, "trial_period_days"),
        },
    }
    session = s.add("checkout.session", "cs_test_", fields)
    session["url"] = f"{s.base_url}/checkout/{session['id']}"
    return session
