"""Catalogue-style endpoints: customers (and their search), products, prices, meters, meter
events, checkout session creation; plus the parameter helpers and the billing calendar.

Each handler takes the store and the decoded form params (plus path ids) and returns the stored
object; the HTTP layer checks the parameters first (server.py) and renders the answer.
"""

from __future__ import annotations

import base64
import calendar
import re
from datetime import UTC, datetime
from typing import Any

from . import shapes
from .state import ApiError, Obj, Store, diff, public

DAY = 86_400
INTERVALS = ("day", "week", "month", "year")
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
    return ApiError(f"Missing required param: {key}.", key, "parameter_missing", validation=True)


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
        raise ApiError(
            f"Invalid integer: {raw}", key, "parameter_invalid_integer", validation=True
        ) from None


def get_str(params: Obj, key: str, *, required: bool = False) -> Any:
    value = params.get(key)
    if required and value in (None, ""):
        raise missing_param(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(f"Invalid string: {value}", key, "parameter_invalid_string", validation=True)
    return value if value != "" else None


def get_bool(params: Obj, key: str, default: bool = False) -> bool:
    value = params.get(key)
    if value in (None, ""):
        return default
    if str(value).lower() not in ("true", "false"):
        raise ApiError(
            f"Invalid boolean: {value}", key, "parameter_invalid_boolean", validation=True
        )
    return str(value).lower() == "true"


def one_of(params: Obj, key: str, allowed: tuple[str, ...], default: str | None = None) -> Any:
    value = params.get(key) or default
    if value is not None and value not in allowed:
        message = f"Invalid {key}: must be one of {', '.join(allowed)}"
        raise ApiError(message, key, "parameter_invalid_string", validation=True)
    return value


def merge_metadata(current: Obj, update: Any) -> Obj:
    """Stripe semantics: ``metadata=""`` clears everything, ``metadata[k]=""`` deletes one key."""
    if update is None:
        return current
    merged = {**current, **update} if isinstance(update, dict) else {}
    return {k: str(v) for k, v in merged.items() if v != ""}


def created_filter(items: list[Obj], p: Obj, key: str = "created") -> list[Obj]:
    """``created=N`` or ``created[gt|gte|lt|lte]=N``, as every Stripe list accepts."""
    raw = p.get(key)
    if raw in (None, ""):
        return items
    bounds = raw if isinstance(raw, dict) else {"eq": raw}
    checks = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for op in bounds:
        limit = get_int(bounds, op)
        items = [o for o in items if checks[op](o[key], limit)]
    return items


# ---------------------------------------------------------------- billing calendar
def boundary(anchor: int, interval: str, count: int, n: int) -> int:
    """The end of the n-th period from ``anchor``: calendar months and years (the anchor's
    day of month, the last day of a shorter month, as Stripe bills), days and weeks exact."""
    if interval in ("day", "week"):
        return anchor + n * count * (DAY if interval == "day" else 7 * DAY)
    start = datetime.fromtimestamp(anchor, tz=UTC)
    months = n * count * (12 if interval == "year" else 1)
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return int(start.replace(year=year, month=month0 + 1, day=day).timestamp())


def next_boundary(anchor: int, price: Obj, after: int) -> int:
    """The first period end from ``anchor`` that lies after ``after``."""
    rec = price["recurring"]
    n = 1
    while (end := boundary(anchor, rec["interval"], rec["interval_count"], n)) <= after:
        n += 1
    return end


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
        if metered and item.get("quantity") not in (None, ""):
            message = "Quantity should not be specified where usage_type is `metered`."
            raise ApiError(message, f"{param}[{i}][quantity]")
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
    pm = shapes.payment_method(s, brand=CARDS[number][0], last4=number[-4:], customer_id=customer)
    pm["_number"] = number
    return s.add(pm)


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
    for key in ("email", "name", "description", "phone"):
        if key in p:
            customer[key] = get_str(p, key)
    customer["metadata"] = merge_metadata(customer["metadata"], p.get("metadata"))
    param = "invoice_settings[default_payment_method]"
    pm_ref = (p.get("invoice_settings") or {}).get("default_payment_method")
    pm = resolve_payment_method(s, pm_ref, customer["id"], param)
    if pm is not None:
        customer["invoice_settings"]["default_payment_method"] = pm["id"]


def create_customer(s: Store, p: Obj) -> Obj:
    customer = s.add(shapes.customer(s))
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
    customer["_deleted"] = True
    return customer


def retrieve_customer(s: Store, p: Obj, customer_id: str) -> Obj:
    """Deleted customers still retrieve (as a stub with ``deleted: true``), like on Stripe."""
    customer = s.objects.get(customer_id)
    if customer is not None and customer["object"] == "customer" and customer.get("_deleted"):
        return customer
    return s.get(customer_id, "customer")


# ---------------------------------------------------------------- customer search
_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?P<field>[a-z_]+(?:\[(?P<q>['"])(?P<key>[^'"]+)(?P=q)\])?)"""
    r"""\s*(?P<op>:|~|>=|<=|>|<)\s*(?:(?P<vq>['"])(?P<value>.*?)(?P=vq)|(?P<bare>[0-9]+|null))"""
    r"""\s*""",
    re.DOTALL,
)
SEARCH_FIELDS = ("created", "email", "metadata", "name", "phone")


def _search_error(query: str, why: str) -> ApiError:
    return ApiError(f"Invalid search query {query!r}: {why}", "query", validation=True)


def _clause_matches(customer: Obj, clause: re.Match[str], query: str) -> bool:
    field, op = clause["field"], clause["op"]
    name = field.split("[", 1)[0]
    if name not in SEARCH_FIELDS or (name == "metadata") != bool(clause["key"]):
        raise _search_error(
            query, f"the simulator searches customers by {', '.join(SEARCH_FIELDS)}"
        )
    value = clause["value"] if clause["vq"] else clause["bare"]
    actual = customer["metadata"].get(clause["key"]) if clause["key"] else customer.get(name)
    if op in (">", "<", ">=", "<="):
        if name != "created" or not (value or "").isdigit():
            raise _search_error(query, "ranges apply to created, with a number")
        limit = int(value)
        found = {">": actual > limit, "<": actual < limit, ">=": actual >= limit}
        return found.get(op, actual <= limit)
    if value == "null" and not clause["vq"]:
        return actual is None
    if actual is None:
        return False
    if op == "~":
        if len(value) < 3:
            raise _search_error(query, "a substring match (~) needs at least 3 characters")
        return value.lower() in str(actual).lower()
    return str(actual).lower() == value.lower() if name == "email" else str(actual) == value


def search_customers(s: Store, p: Obj) -> Obj:
    """``query`` in Stripe's search language: ``field:'value'``, ``field~'part'``,
    ``metadata['key']:'value'``, ``created>N``, ``-`` to negate, joined by AND or OR (not both).
    Unlike Stripe's (up to a minute behind), the simulator's index is always current."""
    query = get_str(p, "query", required=True)
    joiners = set(re.findall(r"\s(AND|OR)\s", query))
    if len(joiners) > 1:
        raise _search_error(query, "AND and OR cannot be combined")
    joiner = joiners.pop() if joiners else "AND"
    parts = re.split(rf"\s{joiner}\s", query)
    clauses = []
    for part in parts:
        clause = _CLAUSE.fullmatch(part)
        if clause is None:
            raise _search_error(query, f"cannot read {part.strip()!r}")
        clauses.append(clause)

    def matches(customer: Obj) -> bool:
        results = [_clause_matches(customer, c, query) != bool(c["neg"]) for c in clauses]
        return all(results) if joiner == "AND" else any(results)

    found = [c for c in s.all("customer") if matches(c)]
    limit = get_int(p, "limit", 10)
    if not 1 <= limit <= 100:
        raise ApiError("This value must be between 1 and 100 (inclusive).", "limit")
    try:
        start = int(base64.urlsafe_b64decode(p["page"]).decode()) if p.get("page") else 0
    except (ValueError, UnicodeDecodeError):
        raise ApiError("Invalid page token.", "page", validation=True) from None
    page = found[start : start + limit]
    more = start + limit < len(found)
    token = base64.urlsafe_b64encode(str(start + limit).encode()).decode() if more else None
    return {
        "object": "search_result",
        "data": page,
        "has_more": more,
        "next_page": token,
        "url": "/v1/customers/search",
    }


# ---------------------------------------------------------------- products & prices
def create_product(s: Store, p: Obj) -> Obj:
    """Custom ids are allowed (Stripe allows them for products), which makes seeding idempotent."""
    if p.get("id") in s.objects:
        raise ApiError("Product already exists.", "id", "resource_already_exists")
    product = shapes.product(s, get_str(p, "name", required=True), get_str(p, "id"))
    product.update(description=get_str(p, "description"), active=get_bool(p, "active", True))
    product["metadata"] = merge_metadata({}, p.get("metadata"))
    return s.add(product)


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
    price = shapes.price(s, product_id=product["id"], currency=currency, unit_amount=unit_amount)
    recurring = p.get("recurring") or None
    if recurring is not None:
        usage_type = one_of(recurring, "usage_type", ("licensed", "metered"), "licensed")
        meter = get_str(recurring, "meter", required=usage_type == "metered")
        if meter:
            meter = s.get(meter, "billing.meter", "recurring[meter]")["id"]
        get_str(recurring, "interval", required=True)
        interval = one_of(recurring, "interval", INTERVALS)
        count = get_int(recurring, "interval_count", 1)
        price.update(
            type="recurring", recurring=shapes.recurring(interval, count, usage_type, meter)
        )
    price.update(active=get_bool(p, "active", True), nickname=get_str(p, "nickname"))
    price["lookup_key"] = _claim_lookup_key(s, p)
    price["metadata"] = merge_metadata({}, p.get("metadata"))
    return s.add(price)


def by_lookup_keys(items: list[Obj], p: Obj) -> list[Obj]:
    keys = p.get("lookup_keys")
    keys = list(keys.values()) if isinstance(keys, dict) else keys
    return [o for o in items if o["lookup_key"] in keys] if keys else items


# ---------------------------------------------------------------- billing meters
def create_meter(s: Store, p: Obj) -> Obj:
    event_name = get_str(p, "event_name", required=True)
    if any(m["event_name"] == event_name for m in s.all("billing.meter")):
        raise ApiError(f"An active meter already uses event_name '{event_name}'.", "event_name")
    aggregation = p.get("default_aggregation") or {}
    meter = shapes.meter(s)
    mapping = p.get("customer_mapping") or {}
    meter.update(
        display_name=get_str(p, "display_name", required=True),
        event_name=event_name,
        default_aggregation={
            "formula": one_of(aggregation, "formula", ("sum", "count", "last"), "sum")
        },
        customer_mapping={
            "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
            "type": one_of(mapping, "type", ("by_id",), "by_id"),
        },
        value_settings={
            "event_payload_key": (p.get("value_settings") or {}).get("event_payload_key") or "value"
        },
    )
    return s.add(meter)


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
    if any(e["identifier"] == identifier and now - e["created"] < DAY for e in s.meter_events):
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
    lines = [
        shapes.checkout_line(
            s,
            price_obj=price,
            quantity=qty,
            description=s.objects[price["product"]]["name"],
        )
        for price, qty in recurring_items(s, p.get("line_items"), "line_items")
    ]
    sub_data = p.get("subscription_data") or {}
    total = sum(line["amount_total"] for line in lines)
    session = shapes.checkout_session(s, customer_id=customer, currency=lines[0]["currency"])
    session.update(
        amount_subtotal=total,
        amount_total=total,
        cancel_url=get_str(p, "cancel_url"),
        client_reference_id=get_str(p, "client_reference_id"),
        customer_email=get_str(p, "customer_email"),
        metadata=merge_metadata({}, p.get("metadata")),
        success_url=get_str(p, "success_url"),
        _line_items=lines,
        _subscription_data={
            "metadata": merge_metadata({}, sub_data.get("metadata")),
            "trial_period_days": get_int(sub_data, "trial_period_days"),
        },
    )
    session["url"] = f"{s.base_url}/checkout/{session['id']}"
    return s.add(session)


def expire_checkout_session(s: Store, p: Obj, session_id: str) -> Obj:
    session = s.get(session_id, "checkout.session", "session")
    if session["status"] != "open":
        message = (
            'Only Checkout Sessions with a status in ["open"] can be expired, got '
            f"{session['status']}."
        )
        raise ApiError(message, "session")
    session.update(status="expired", url=None)
    s.emit("checkout.session.expired", session)
    return session


def checkout_line_items(s: Store, p: Obj, session_id: str) -> Obj:
    session = s.get(session_id, "checkout.session", "session")
    return s.page(session["_line_items"], p, f"/v1/checkout/sessions/{session_id}/line_items")


def checkout_includes_line_items(s: Store, session: Obj) -> Obj:
    return public(shapes.line_items_list(session))
