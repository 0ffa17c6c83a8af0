"""Subscriptions: create (via API or checkout), update with prorations, cancel, renew.

Periods are calendar periods from the billing cycle anchor (a subscription started on the 31st
renews on the last day of shorter months), and live on the subscription items
(``items.data[].current_period_start/end``), as in the pinned API version. Prorations are
computed per second of the current period and rounded half-up to whole cents: credit
``old * remaining / period`` and charge ``new * remaining / period``, each line rounded.
"""

from __future__ import annotations

import time
from typing import Any

from . import shapes
from .billing import card_error, default_payment_method, emit_invoice, new_invoice, pay_invoice
from .resources import (
    CARDS,
    DAY,
    create_customer,
    create_payment_method,
    get_bool,
    get_int,
    get_str,
    merge_metadata,
    meter_total,
    next_boundary,
    one_of,
    recurring_items,
    resolve_payment_method,
)
from .state import ApiError, Obj, Store, diff, list_object, public

LIVE_STATUSES = ("active", "trialing", "past_due")


def share(amount: int, part: int, whole: int) -> int:
    """``amount * part / whole`` rounded half-up in integers, so cents never drift via floats."""
    return (amount * part * 2 + whole) // (2 * whole) if whole > 0 else 0


def _name(s: Store, price: Obj) -> str:
    return s.objects[price["product"]]["name"]


def _amount(price: Obj, qty: int | None) -> int:
    return 0 if price["recurring"]["usage_type"] == "metered" else price["unit_amount"] * qty


def _cycle(price: Obj) -> tuple[str, int, str]:
    recurring = price["recurring"]
    return recurring["interval"], recurring["interval_count"], recurring["usage_type"]


def period(sub: Obj) -> tuple[int, int]:
    """The current period, kept on the items (they share one interval here)."""
    item = sub["items"]["data"][0]
    return item["current_period_start"], item["current_period_end"]


def _set_period(sub: Obj, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item.update(current_period_start=start, current_period_end=end)


def _line(
    s: Store,
    sub: Obj,
    item: Obj,
    amount: int,
    text: str,
    span: tuple[int, int],
    *,
    price: Obj | None = None,
    quantity: Any = None,
    proration: bool = False,
) -> Obj:
    """An invoice line for ``item`` (at its current price unless a proration says otherwise)."""
    return shapes.invoice_line(
        s,
        sub=sub,
        item=item,
        price_obj=price or item["price"],
        quantity=item["quantity"] if quantity is None else quantity,
        amount=amount,
        description=text,
        period=span,
        proration=proration,
    )


def _plan_line(s: Store, sub: Obj, item: Obj, span: tuple[int, int]) -> Obj:
    price, qty = item["price"], item["quantity"]
    if price["recurring"]["usage_type"] == "metered":
        text = f"{_name(s, price)} (metered)"
    else:
        text = f"{qty} × {_name(s, price)} (at ${price['unit_amount'] / 100:.2f} / month)"
    return _line(s, sub, item, _amount(price, qty), text, span)


def start_subscription(
    s: Store, customer: Obj, items: list[Any], *, trial_end: int | None, metadata: Obj, pm: Any
) -> Obj:
    """Create a subscription and its first invoice, and pay it (card checked by the caller)."""
    now = s.now()
    anchor = trial_end or now
    end = trial_end or next_boundary(anchor, items[0][0], now)
    sub = shapes.subscription(
        s, customer_id=customer["id"], currency=items[0][0]["currency"], anchor=anchor
    )
    sub.update(
        default_payment_method=pm and pm["id"],
        metadata=metadata,
        trial_start=now if trial_end else None,
        trial_end=trial_end,
        _pending=[],  # proration lines waiting for the next invoice
    )
    sub_items = [
        s.add(
            shapes.subscription_item(
                s, sub_id=sub["id"], price_obj=price, quantity=qty, period=(now, end)
            )
        )
        for price, qty in items
    ]
    sub["items"] = list_object(sub_items, f"/v1/subscription_items?subscription={sub['id']}")
    s.add(sub)
    lines = [_plan_line(s, sub, item, (now, end)) for item in sub_items]
    for line in lines if trial_end else []:
        line.update(amount=0, subtotal=0)
        line["description"] = f"Trial period for {line['description'].split(' × ')[-1]}"
    inv = new_invoice(s, sub, lines, "subscription_create", (now, now))
    decline = pay_invoice(s, inv, pm)
    sub["status"] = "trialing" if trial_end else ("active" if decline is None else "incomplete")
    sub["latest_invoice"] = inv["id"]
    s.emit("customer.subscription.created", sub)
    emit_invoice(s, inv)
    return sub


def create_subscription(s: Store, p: Obj) -> Obj:
    """A declined first payment leaves the subscription ``incomplete`` (allow_incomplete)."""
    customer = s.get(get_str(p, "customer", required=True), "customer", "customer")
    items = recurring_items(s, p.get("items"), "items")
    now = s.now()
    trial_end = None if p.get("trial_end") in (None, "", "now") else get_int(p, "trial_end")
    if get_int(p, "trial_period_days"):
        trial_end = now + get_int(p, "trial_period_days") * DAY
    if trial_end is not None and trial_end <= now:
        raise ApiError("trial_end must be in the future.", "trial_end")
    param = "default_payment_method"
    pm = resolve_payment_method(s, p.get(param), customer["id"], param)
    pm = pm or default_payment_method(s, customer["id"])
    if not trial_end and pm is None and any(_amount(price, qty) for price, qty in items):
        raise card_error("no_payment_method")
    metadata = merge_metadata({}, p.get("metadata"))
    return start_subscription(s, customer, items, trial_end=trial_end, metadata=metadata, pm=pm)


def _proration_lines(
    s: Store, sub: Obj, item: Obj, new_price: Obj, new_qty: Any, now: int
) -> list[Obj]:
    """Credit unused time on the item's current price and charge the rest on the new one."""
    start, end = period(sub)
    day = time.strftime("%d %b %Y", time.gmtime(now))
    credit = share(_amount(item["price"], item["quantity"]), end - now, end - start)
    debit = share(_amount(new_price, new_qty), end - now, end - start)
    lines = []
    if credit:
        text = f"Unused time on {_name(s, item['price'])} after {day}"
        lines.append(_line(s, sub, item, -credit, text, (now, end), proration=True))
    if debit:
        text = f"Remaining time on {_name(s, new_price)} after {day}"
        lines.append(
            _line(
                s,
                sub,
                item,
                debit,
                text,
                (now, end),
                price=new_price,
                quantity=new_qty,
                proration=True,
            )
        )
    return lines


def update_subscription(s: Store, p: Obj, sub_id: str) -> Obj:
    """Swap item prices/quantities (``items[n][id]`` required), cancel_at_period_end, metadata.

    ``proration_behavior``: create_prorations (default; billed on the next renewal invoice),
    always_invoice (invoiced and charged now), none. Trialing subscriptions never prorate.
    """
    sub = s.get(sub_id, "subscription")
    if sub["status"] == "canceled" and set(p) - {"metadata", "cancellation_details", "expand"}:
        message = "A canceled subscription can only update its cancellation_details and metadata."
        raise ApiError(message)
    before, now = public(sub), s.now()
    behaviors = ("create_prorations", "always_invoice", "none")
    behavior = one_of(p, "proration_behavior", behaviors, "create_prorations")
    lines: list[Obj] = []
    for i, change in enumerate(p.get("items") or []):
        item = next((x for x in sub["items"]["data"] if x["id"] == change.get("id")), None)
        if item is None:
            message = f"The simulator only changes existing items: pass a valid items[{i}][id]."
            raise ApiError(message, f"items[{i}][id]")
        price = item["price"]
        if change.get("price"):
            price = s.get(change["price"], "price", f"items[{i}][price]")
        if _cycle(price) != _cycle(item["price"]):
            message = "The simulator cannot change the interval or usage type of an item."
            raise ApiError(message, f"items[{i}][price]")
        qty = get_int(change, "quantity", item["quantity"])
        if sub["status"] in ("active", "past_due") and behavior != "none":
            lines += _proration_lines(s, sub, item, price, qty, now)
        item.update(price=price, plan=shapes.plan(price), quantity=qty)
    if "cancel_at_period_end" in p:
        cape = get_bool(p, "cancel_at_period_end")
        sub.update(cancel_at_period_end=cape, cancel_at=period(sub)[1] if cape else None)
        sub["canceled_at"] = now if cape else None  # Stripe records when it was requested
        sub["cancellation_details"]["reason"] = "cancellation_requested" if cape else None
    for key in ("comment", "feedback"):
        if key in (p.get("cancellation_details") or {}):
            sub["cancellation_details"][key] = get_str(p["cancellation_details"], key)
    if p.get("default_payment_method"):
        param, customer = "default_payment_method", sub["customer"]
        pm = resolve_payment_method(s, p[param], customer, param)
        sub["default_payment_method"] = pm and pm["id"]
    sub["metadata"] = merge_metadata(sub["metadata"], p.get("metadata"))
    inv = None
    if lines and behavior == "always_invoice":
        inv = new_invoice(s, sub, sub["_pending"] + lines, "subscription_update", (now, now))
        sub.update(_pending=[], latest_invoice=inv["id"])
        if pay_invoice(s, inv, default_payment_method(s, sub["customer"], sub)):
            sub["status"] = "past_due"
    else:
        sub["_pending"] += lines
    s.emit("customer.subscription.updated", sub, diff(before, sub))
    if inv is not None:
        emit_invoice(s, inv)
    return sub


def cancel_subscription(s: Store, p: Obj, sub_id: str) -> Obj:
    """DELETE: ends now. ``prorate`` credits unused time; ``invoice_now`` bills pending lines."""
    sub = s.get(sub_id, "subscription")
    if sub["status"] == "canceled":
        raise ApiError("This subscription has already been canceled.", "subscription")
    now = s.now()
    lines = list(sub["_pending"])
    if get_bool(p, "prorate") and sub["status"] in ("active", "past_due"):
        for item in sub["items"]["data"]:
            lines += _proration_lines(s, sub, item, item["price"], 0, now)
    inv = None
    if lines and get_bool(p, "invoice_now"):
        inv = new_invoice(s, sub, lines, "subscription_update", (now, now))
        pay_invoice(s, inv, default_payment_method(s, sub["customer"], sub))
        sub["latest_invoice"] = inv["id"]
    sub.update(status="canceled", canceled_at=now, ended_at=now, _pending=[])
    sub["cancellation_details"]["reason"] = "cancellation_requested"
    for key in ("comment", "feedback"):
        if key in (p.get("cancellation_details") or {}):
            sub["cancellation_details"][key] = get_str(p["cancellation_details"], key)
    s.emit("customer.subscription.deleted", sub)
    if inv is not None:
        emit_invoice(s, inv)
    return sub


def renew(s: Store, sub: Obj, *, fail: bool = False) -> Obj:
    """Run one billing cycle at the period's end (what a Stripe test clock would do).

    Licensed items are billed in advance for the new period, metered items in arrears from
    the meter totals of the period just ended, plus pending prorations. ``fail`` forces a
    decline; a failed payment leaves the invoice open and the subscription ``past_due``.
    A subscription set to cancel at period end is canceled instead.
    """
    if sub["status"] not in LIVE_STATUSES:
        raise ApiError(f"Cannot renew a subscription with status {sub['status']}.")
    before = public(sub)
    start, end = period(sub)
    if sub["cancel_at_period_end"]:
        sub.update(status="canceled", ended_at=end)
        s.emit("customer.subscription.deleted", sub)
        return sub
    new_end = next_boundary(sub["billing_cycle_anchor"], sub["items"]["data"][0]["price"], end)
    lines = []
    for item in sub["items"]["data"]:
        price = item["price"]
        if price["recurring"]["usage_type"] == "metered":
            usage = meter_total(s, sub["customer"], price["recurring"]["meter"], start, end)
            amount, text = round(usage * price["unit_amount"]), f"{_name(s, price)} usage"
            quantity = int(usage) if usage.is_integer() else usage
            lines.append(_line(s, sub, item, amount, text, (start, end), quantity=quantity))
        else:
            lines.append(_plan_line(s, sub, item, (end, new_end)))
    _set_period(sub, end, new_end)
    inv = new_invoice(s, sub, sub["_pending"] + lines, "subscription_cycle", (start, end))
    pm = default_payment_method(s, sub["customer"], sub)
    decline = pay_invoice(s, inv, pm, "generic_decline" if fail else None)
    sub.update(_pending=[], latest_invoice=inv["id"], status="past_due" if decline else "active")
    s.emit("customer.subscription.updated", sub, diff(before, sub))
    emit_invoice(s, inv)
    return sub


def process_due(s: Store) -> None:
    """Renew every live subscription whose period ended by the simulated ``now``."""
    for _ in range(1000):  # bound: a huge clock jump renews at most this many cycles
        due = [x for x in s.all("subscription") if x["status"] in LIVE_STATUSES]
        due = [x for x in due if period(x)[1] <= s.now()]
        if not due:
            return
        for sub in sorted(due, key=lambda x: period(x)[1]):
            renew(s, sub)


def complete_checkout(s: Store, session_id: str, card_number: str) -> Obj:
    """Pay a subscription-mode session as the hosted page would; a decline changes nothing."""
    session = s.get(session_id, "checkout.session", "session")
    if session["status"] != "open":
        raise ApiError("This Checkout Session is no longer active.", "session")
    number = "".join(card_number.split())
    if CARDS.get(number, ("", None))[1]:
        raise card_error(CARDS[number][1])
    pm = create_payment_method(s, number, session["customer"])  # raises on unknown numbers
    if session["customer"]:
        customer = s.get(session["customer"], "customer", "customer")
    else:
        customer = create_customer(s, {"email": session["customer_email"]})
        pm["customer"] = customer["id"]
    data, now = session["_subscription_data"], s.now()
    days = data["trial_period_days"]
    items = [(line["price"], line["quantity"]) for line in session["_line_items"]]
    trial_end = now + days * DAY if days else None
    metadata = dict(data["metadata"])
    sub = start_subscription(s, customer, items, trial_end=trial_end, metadata=metadata, pm=pm)
    session.update(status="complete", customer=customer["id"], subscription=sub["id"], url=None)
    session.update(
        invoice=sub["latest_invoice"], customer_details=shapes.customer_details(customer)
    )
    session["collected_information"] = {
        "business_name": None,
        "individual_name": None,
        "shipping_details": None,
    }
    session["payment_status"] = "no_payment_required" if days else "paid"
    s.emit("checkout.session.completed", session)
    return session
