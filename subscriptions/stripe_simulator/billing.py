"""Money-moving flows: subscriptions, invoices, charges, refunds, checkout completion, renewals.

Amounts are integer cents. A charge's outcome comes from the card number behind its payment
method (``resources.CARDS``), so a declining test card declines every time, like on Stripe.
Prorations are computed per second of the current period and rounded half-up to whole cents.
"""

from __future__ import annotations

import time
from typing import Any

from .resources import (
    CARDS,
    DECLINE_MESSAGES,
    create_customer,
    create_payment_method,
    get_bool,
    get_int,
    get_str,
    merge_metadata,
    meter_total,
    one_of,
    period_end,
    resolve_payment_method,
)
from .state import Obj, Store, StripeError, diff, list_object, public

LIVE_STATUSES = ("active", "trialing", "past_due")


def card_error(decline_code: str) -> StripeError:
    if decline_code == "no_payment_method":
        return StripeError(
            "This customer has no attached payment source or default payment method.",
            code="resource_missing",
            param="payment_method",
        )
    return StripeError(
        DECLINE_MESSAGES.get(decline_code, "Your card was declined."),
        status=402,
        type="card_error",
        code="expired_card" if decline_code == "expired_card" else "card_declined",
        decline_code=decline_code,
    )


def share(amount: int, part: int, whole: int) -> int:
    """``amount * part / whole`` rounded half-up in integers, so cents never drift via floats."""
    return (amount * part * 2 + whole) // (2 * whole) if whole > 0 else 0


def _day(ts: int) -> str:
    return time.strftime("%d %b %Y", time.gmtime(ts))


def _name(s: Store, price: Obj) -> str:
    return s.objects[price["product"]]["name"]


def _metered(price: Obj) -> bool:
    return price["recurring"]["usage_type"] == "metered"


def _amount(price: Obj, qty: int | None) -> int:
    return 0 if _metered(price) else price["unit_amount"] * (qty or 0)


def _line(
    s: Store,
    sub: Obj,
    item: Obj,
    price: Obj,
    qty: Any,
    amount: int,
    description: str,
    period: tuple[int, int],
    *,
    proration: bool = False,
) -> Obj:
    return {
        "id": s.new_id("il_"),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": description,
        "period": {"start": period[0], "end": period[1]},
        "price": price,
        "quantity": qty,
        "proration": proration,
        "type": "subscription",
        "subscription": sub["id"],
        "subscription_item": item["id"],
        "livemode": False,
        "metadata": {},
    }


def _describe(s: Store, price: Obj, qty: Any) -> str:
    return (
        f"{qty or 1} × {_name(s, price)} (at ${price['unit_amount'] / 100:.2f} / "
        f"{price['recurring']['interval']})"
    )


# ---------------------------------------------------------------- charges & invoices
def default_payment_method(s: Store, customer_id: str, sub: Obj | None = None) -> Obj | None:
    """Subscription's own payment method first, then the customer's invoice default."""
    customer = s.objects[customer_id]
    pm_id = (sub or {}).get("default_payment_method") or customer["invoice_settings"][
        "default_payment_method"
    ]
    return s.objects.get(pm_id) if pm_id else None


def charge(
    s: Store,
    customer: str,
    amount: int,
    currency: str,
    pm: Obj | None,
    invoice: str | None,
    force_decline: str | None = None,
) -> tuple[Obj, Obj, str | None]:
    """Create a PaymentIntent and its Charge; returns them plus the decline code, if any."""
    decline = force_decline or (CARDS[pm["_number"]][1] if pm else "generic_decline")
    ok = decline is None
    error = None if ok else card_error(decline).body()["error"]
    pi = s.add(
        "payment_intent",
        "pi_",
        {
            "amount": amount,
            "amount_received": amount if ok else 0,
            "currency": currency,
            "customer": customer,
            "status": "succeeded" if ok else "requires_payment_method",
            "payment_method": pm and pm["id"],
            "latest_charge": None,
            "invoice": invoice,
            "description": None,
            "last_payment_error": error,
        },
    )
    ch = s.add(
        "charge",
        "ch_",
        {
            "amount": amount,
            "amount_captured": amount if ok else 0,
            "amount_refunded": 0,
            "captured": ok,
            "currency": currency,
            "customer": customer,
            "description": None,
            "invoice": invoice,
            "paid": ok,
            "payment_intent": pi["id"],
            "payment_method": pm and pm["id"],
            "payment_method_details": {
                "type": "card",
                "card": pm and {"brand": pm["card"]["brand"], "last4": pm["card"]["last4"]},
            },
            "refunded": False,
            "status": "succeeded" if ok else "failed",
            "failure_code": error and error["code"],
            "failure_message": error and error["message"],
            "outcome": {"type": "authorized" if ok else "issuer_declined"},
            "balance_transaction": None,
            "receipt_url": None,
        },
    )
    ch["refunds"] = list_object([], f"/v1/charges/{ch['id']}/refunds")
    pi["latest_charge"] = ch["id"]
    s.emit("charge.succeeded" if ok else "charge.failed", ch)
    return pi, ch, decline


def new_invoice(s: Store, sub: Obj, lines: list[Obj], reason: str, period: tuple[int, int]) -> Obj:
    """A finalized invoice; the customer's credit balance is applied, as Stripe does.

    ``period_start/end`` follow Stripe: the *previous* period for cycle invoices (the usage
    period), ``created`` twice for the first invoice. Line items carry the service periods.
    """
    s.invoice_seq += 1
    customer = s.objects[sub["customer"]]
    total = sum(line["amount"] for line in lines)
    due = total + customer["balance"]
    inv = s.add(
        "invoice",
        "in_",
        {
            "customer": customer["id"],
            "customer_email": customer["email"],
            "subscription": sub["id"],
            "billing_reason": reason,
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
            "collection_method": "charge_automatically",
            "currency": sub["currency"],
            "status": "open",
            "number": f"SIM-{s.invoice_seq:06d}",
            "subtotal": total,
            "total": total,
            "starting_balance": customer["balance"],
            "ending_balance": min(0, due),
            "amount_due": max(0, due),
            "amount_paid": 0,
            "amount_remaining": max(0, due),
            "attempted": False,
            "attempt_count": 0,
            "paid": False,
            "charge": None,
            "payment_intent": None,
            "period_start": period[0],
            "period_end": period[1],
            "status_transitions": {"finalized_at": s.now(), "paid_at": None, "voided_at": None},
            "next_payment_attempt": None,
            "hosted_invoice_url": None,
        },
    )
    inv["lines"] = list_object(lines, f"/v1/invoices/{inv['id']}/lines")
    customer["balance"] = min(0, due)
    return inv


def pay_invoice(s: Store, inv: Obj, pm: Obj | None, force_decline: str | None = None) -> Any:
    """Try to collect ``amount_remaining``; returns the decline code or None when paid."""
    if inv["amount_remaining"] > 0:
        inv["attempted"] = True
        inv["attempt_count"] += 1
        if pm is None and not force_decline:
            inv["next_payment_attempt"] = s.now() + 3 * 86_400
            return "no_payment_method"
        pi, ch, decline = charge(
            s,
            inv["customer"],
            inv["amount_remaining"],
            inv["currency"],
            pm,
            inv["id"],
            force_decline,
        )
        inv["charge"], inv["payment_intent"] = ch["id"], pi["id"]
        if decline:
            inv["next_payment_attempt"] = s.now() + 3 * 86_400
            return decline
        inv["amount_paid"] = inv["amount_remaining"]
    inv.update(status="paid", paid=True, amount_remaining=0, next_payment_attempt=None)
    inv["status_transitions"]["paid_at"] = s.now()
    return None


def emit_invoice(s: Store, inv: Obj) -> None:
    if inv["status"] == "paid":
        s.emit("invoice.paid", inv)
        s.emit("invoice.payment_succeeded", inv)
    else:
        s.emit("invoice.payment_failed", inv)


def pay_invoice_endpoint(s: Store, p: Obj, invoice_id: str) -> Obj:
    """POST /v1/invoices/{id}/pay: retry an open invoice; a paid one revives a past_due sub."""
    inv = s.get(invoice_id, "invoice")
    if inv["status"] != "open":
        raise StripeError("Invoice is already paid.", code="invoice_not_open")
    sub = s.objects[inv["subscription"]]
    pm = resolve_payment_method(s, p.get("payment_method"), inv["customer"], "payment_method")
    decline = pay_invoice(s, inv, pm or default_payment_method(s, inv["customer"], sub))
    emit_invoice(s, inv)
    if decline:
        raise card_error(decline)
    if sub["status"] == "past_due" and sub["latest_invoice"] == inv["id"]:
        before = public(sub)
        sub["status"] = "active"
        s.emit("customer.subscription.updated", sub, diff(before, sub))
    return inv


# ---------------------------------------------------------------- subscriptions
def _items(s: Store, raw: Any, param: str = "items") -> list[tuple[Obj, Any]]:
    if not isinstance(raw, list) or not raw:
        raise StripeError(
            f"Missing required param: {param}.", code="parameter_missing", param=param
        )
    items = []
    for i, item in enumerate(raw):
        price = s.get(get_str(item, "price", required=True), "price", f"{param}[{i}][price]")
        if price["type"] != "recurring":
            raise StripeError("Subscriptions need recurring prices.", param=f"{param}[{i}][price]")
        items.append((price, None if _metered(price) else get_int(item, "quantity", 1)))
    if len({(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p, _ in items}) > 1:
        raise StripeError("All prices on a subscription must share one interval.", param=param)
    return items


def start_subscription(
    s: Store,
    customer: Obj,
    items: list[tuple[Obj, Any]],
    *,
    trial_end: int | None,
    metadata: Obj,
    pm: Obj | None,
) -> Obj:
    """Create a subscription and its first invoice, and pay it (card checked by the caller)."""
    now = s.now()
    end = trial_end or period_end(now, items[0][0])
    sub = s.add(
        "subscription",
        "sub_",
        {
            "customer": customer["id"],
            "status": "incomplete",
            "currency": items[0][0]["currency"],
            "collection_method": "charge_automatically",
            "start_date": now,
            "billing_cycle_anchor": end if trial_end else now,
            "current_period_start": now,
            "current_period_end": end,
            "cancel_at_period_end": False,
            "cancel_at": None,
            "canceled_at": None,
            "ended_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "trial_start": now if trial_end else None,
            "trial_end": trial_end,
            "default_payment_method": pm and pm["id"],
            "latest_invoice": None,
            "metadata": metadata,
            "_pending": [],
        },
    )
    sub_items = [
        s.add(
            "subscription_item",
            "si_",
            {
                "price": price,
                "quantity": qty,
                "subscription": sub["id"],
                "current_period_start": now,
                "current_period_end": end,
            },
        )
        for price, qty in items
    ]
    sub["items"] = list_object(sub_items, f"/v1/subscription_items?subscription={sub['id']}")
    lines = [
        _line(
            s,
            sub,
            it,
            it["price"],
            it["quantity"],
            0 if trial_end else _amount(it["price"], it["quantity"]),
            f"Trial period for {_name(s, it['price'])}"
            if trial_end
            else _describe(s, it["price"], it["quantity"]),
            (now, end),
        )
        for it in sub_items
    ]
    inv = new_invoice(s, sub, lines, "subscription_create", (now, now))
    decline = pay_invoice(s, inv, pm)
    sub["status"] = "trialing" if trial_end else ("active" if decline is None else "incomplete")
    sub["latest_invoice"] = inv["id"]
    s.emit("customer.subscription.created", sub)
    emit_invoice(s, inv)
    return sub


def create_subscription(s: Store, p: Obj) -> Obj:
    """``payment_behavior`` default (allow_incomplete) leaves a declined sub ``incomplete``."""
    customer = s.get(get_str(p, "customer", required=True), "customer", "customer")
    items = _items(s, p.get("items"))
    now = s.now()
    trial_end = None if p.get("trial_end") in (None, "", "now") else get_int(p, "trial_end")
    if get_int(p, "trial_period_days"):
        trial_end = now + get_int(p, "trial_period_days") * 86_400
    if trial_end is not None and trial_end <= now:
        raise StripeError("trial_end must be in the future.", param="trial_end")
    pm = resolve_payment_method(
        s, p.get("default_payment_method"), customer["id"], "default_payment_method"
    )
    pm = pm or default_payment_method(s, customer["id"])
    due = 0 if trial_end else sum(_amount(price, qty) for price, qty in items)
    behavior = one_of(
        p,
        "payment_behavior",
        ("allow_incomplete", "error_if_incomplete", "default_incomplete", "pending_if_incomplete"),
    )
    if due and pm is None:
        raise card_error("no_payment_method")
    if due and behavior == "error_if_incomplete" and CARDS[pm["_number"]][1]:
        raise card_error(CARDS[pm["_number"]][1])
    return start_subscription(
        s,
        customer,
        items,
        trial_end=trial_end,
        pm=pm,
        metadata=merge_metadata({}, p.get("metadata")),
    )


def _period_lines(
    s: Store, sub: Obj, item: Obj, new_price: Obj, new_qty: Any, now: int, reset_end: int | None
) -> list[Obj]:
    """Credit unused time on the old price, charge the rest (or, on interval change, all)."""
    start, end = sub["current_period_start"], sub["current_period_end"]
    old, new = _amount(item["price"], item["quantity"]), _amount(new_price, new_qty)
    credit = share(old, end - now, end - start)
    lines = []
    if credit:
        lines.append(
            _line(
                s,
                sub,
                item,
                item["price"],
                item["quantity"],
                -credit,
                f"Unused time on {_name(s, item['price'])} after {_day(now)}",
                (now, end),
                proration=True,
            )
        )
    if reset_end is not None:
        lines.append(
            _line(
                s,
                sub,
                item,
                new_price,
                new_qty,
                new,
                _describe(s, new_price, new_qty),
                (now, reset_end),
            )
        )
    elif share(new, end - now, end - start):
        lines.append(
            _line(
                s,
                sub,
                item,
                new_price,
                new_qty,
                share(new, end - now, end - start),
                f"Remaining time on {_name(s, new_price)} after {_day(now)}",
                (now, end),
                proration=True,
            )
        )
    return lines


def update_subscription(s: Store, p: Obj, sub_id: str) -> Obj:
    """Swap item prices/quantities (``items[n][id]`` required), toggle cancel_at_period_end, etc.

    Changing to a price with another interval resets the billing cycle and invoices at once
    (Stripe does the same); otherwise ``proration_behavior`` decides what is billed.
    """
    sub = s.get(sub_id, "subscription")
    if sub["status"] == "canceled" and set(p) - {"metadata", "cancellation_details", "expand"}:
        raise StripeError(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    before, now = public(sub), s.now()
    behavior = one_of(
        p,
        "proration_behavior",
        ("create_prorations", "always_invoice", "none"),
        "create_prorations",
    )
    prorate = sub["status"] in ("active", "past_due") and behavior != "none"
    lines: list[Obj] = []
    reset_end = None
    for i, change in enumerate(p.get("items") or []):
        item = next((x for x in sub["items"]["data"] if x["id"] == change.get("id")), None)
        if item is None:
            raise StripeError(
                f"The simulator only changes existing items: pass a valid items[{i}][id].",
                param=f"items[{i}][id]",
            )
        price = (
            s.get(change["price"], "price", f"items[{i}][price]")
            if change.get("price")
            else item["price"]
        )
        qty = None if _metered(price) else get_int(change, "quantity", item["quantity"] or 1)
        interval = (price["recurring"]["interval"], price["recurring"]["interval_count"])
        old = item["price"]["recurring"]
        if interval != (old["interval"], old["interval_count"]):
            reset_end = period_end(now, price)
        if prorate or (reset_end and sub["status"] != "trialing"):
            lines += (
                _period_lines(s, sub, item, price, qty, now, reset_end)
                if prorate
                else [
                    _line(
                        s,
                        sub,
                        item,
                        price,
                        qty,
                        _amount(price, qty),
                        _describe(s, price, qty),
                        (now, reset_end or now),
                    )
                ]
            )
        item["price"], item["quantity"] = price, qty
    if reset_end is not None:
        sub.update(current_period_start=now, current_period_end=reset_end, billing_cycle_anchor=now)
        for item in sub["items"]["data"]:
            item.update(current_period_start=now, current_period_end=reset_end)
    if "cancel_at_period_end" in p:
        cape = get_bool(p, "cancel_at_period_end")
        sub.update(
            cancel_at_period_end=cape,
            cancel_at=sub["current_period_end"] if cape else None,
            canceled_at=now if cape else None,
        )
        sub["cancellation_details"]["reason"] = "cancellation_requested" if cape else None
    for key in ("comment", "feedback"):
        if key in (p.get("cancellation_details") or {}):
            sub["cancellation_details"][key] = get_str(p["cancellation_details"], key)
    if p.get("default_payment_method"):
        sub["default_payment_method"] = resolve_payment_method(
            s, p["default_payment_method"], sub["customer"], "default_payment_method"
        )["id"]
    sub["metadata"] = merge_metadata(sub["metadata"], p.get("metadata"))
    inv = None
    if lines and (behavior == "always_invoice" or reset_end is not None):
        inv = new_invoice(s, sub, sub["_pending"] + lines, "subscription_update", (now, now))
        sub["_pending"], sub["latest_invoice"] = [], inv["id"]
        if pay_invoice(s, inv, default_payment_method(s, sub["customer"], sub)):
            sub["status"] = "past_due"
    else:
        sub["_pending"] += lines  # picked up by the next renewal invoice
    s.emit("customer.subscription.updated", sub, diff(before, sub))
    if inv is not None:
        emit_invoice(s, inv)
    return sub


def cancel_subscription(s: Store, p: Obj, sub_id: str) -> Obj:
    """DELETE: ends now. ``prorate`` credits unused time; ``invoice_now`` bills pending items."""
    sub = s.get(sub_id, "subscription")
    if sub["status"] == "canceled":
        raise StripeError("This subscription has already been canceled.", param="subscription")
    now = s.now()
    lines = list(sub["_pending"])
    if get_bool(p, "prorate") and sub["status"] in ("active", "past_due"):
        for item in sub["items"]["data"]:
            lines += _period_lines(s, sub, item, item["price"], 0, now, None)
    inv = None
    if lines and get_bool(p, "invoice_now"):
        inv = new_invoice(s, sub, lines, "subscription_update", (now, now))
        pay_invoice(s, inv, default_payment_method(s, sub["customer"], sub))
        sub["latest_invoice"] = inv["id"]
    sub.update(status="canceled", canceled_at=now, ended_at=now, _pending=[])
    sub["cancellation_details"]["reason"] = "cancellation_requested"
    s.emit("customer.subscription.deleted", sub)
    if inv is not None:
        emit_invoice(s, inv)
    return sub


def renew(s: Store, sub: Obj, *, fail: bool = False) -> Obj:
    """Run one billing cycle at ``current_period_end`` (what a Stripe test clock would do).

    Licensed items are billed in advance for the new period, metered items in arrears from
    the meter totals of the period just ended, plus pending prorations. ``fail`` forces a
    decline; a failed payment leaves the invoice open and the subscription ``past_due``.
    A subscription set to cancel at period end is canceled instead.
    """
    if sub["status"] not in LIVE_STATUSES:
        raise StripeError(f"Cannot renew a subscription with status {sub['status']}.")
    before, start, end = public(sub), sub["current_period_start"], sub["current_period_end"]
    if sub["cancel_at_period_end"]:
        sub.update(status="canceled", ended_at=end)
        s.emit("customer.subscription.deleted", sub)
        return sub
    new_end = period_end(end, sub["items"]["data"][0]["price"])
    lines = []
    for item in sub["items"]["data"]:
        price = item["price"]
        if _metered(price):
            usage = meter_total(s, sub["customer"], price["recurring"]["meter"], start, end)
            lines.append(
                _line(
                    s,
                    sub,
                    item,
                    price,
                    usage,
                    round(usage * price["unit_amount"]),
                    f"{_name(s, price)} usage",
                    (start, end),
                )
            )
        else:
            lines.append(
                _line(
                    s,
                    sub,
                    item,
                    price,
                    item["quantity"],
                    _amount(price, item["quantity"]),
                    _describe(s, price, item["quantity"]),
                    (end, new_end),
                )
            )
        item.update(current_period_start=end, current_period_end=new_end)
    sub.update(current_period_start=end, current_period_end=new_end)
    inv = new_invoice(s, sub, sub["_pending"] + lines, "subscription_cycle", (start, end))
    decline = pay_invoice(
        s, inv, default_payment_method(s, sub["customer"], sub), "generic_decline" if fail else None
    )
    sub.update(_pending=[], latest_invoice=inv["id"], status="past_due" if decline else "active")
    s.emit("customer.subscription.updated", sub, diff(before, sub))
    emit_invoice(s, inv)
    return sub


def process_due(s: Store) -> None:
    """Renew every live subscription whose period ended by the simulated ``now``."""
    for _ in range(1000):  # bound: a huge clock jump renews at most this many cycles
        due = [
            x
            for x in s.all("subscription")
            if x["status"] in LIVE_STATUSES and x["current_period_end"] <= s.now()
        ]
        if not due:
            return
        for sub in sorted(due, key=lambda x: x["current_period_end"]):
            renew(s, sub)


# ---------------------------------------------------------------- refunds & checkout
def create_refund(s: Store, p: Obj) -> Obj:
    if p.get("charge"):
        ch = s.get(p["charge"], "charge", "charge")
    elif p.get("payment_intent"):
        pi = s.get(p["payment_intent"], "payment_intent", "payment_intent")
        ch = s.get(pi["latest_charge"], "charge", "payment_intent")
    else:
        raise StripeError(
            "One of charge or payment_intent is required.", code="parameter_missing", param="charge"
        )
    if ch["status"] != "succeeded":
        raise StripeError(
            f"Charge {ch['id']} did not succeed and cannot be refunded.", param="charge"
        )
    remaining = ch["amount"] - ch["amount_refunded"]
    if remaining <= 0:
        raise StripeError(
            f"Charge {ch['id']} has already been refunded.",
            code="charge_already_refunded",
            param="charge",
        )
    amount = get_int(p, "amount", remaining)
    if amount <= 0:
        raise StripeError(
            "Invalid positive integer", code="parameter_invalid_integer", param="amount"
        )
    if amount > remaining:
        raise StripeError(
            f"Refund amount (${amount / 100:.2f}) is greater than unrefunded "
            f"amount on charge (${remaining / 100:.2f})",
            code="amount_too_large",
            param="amount",
        )
    before = public(ch)
    refund = s.add(
        "refund",
        "re_",
        {
            "amount": amount,
            "charge": ch["id"],
            "payment_intent": ch["payment_intent"],
            "currency": ch["currency"],
            "status": "succeeded",
            "balance_transaction": None,
            "reason": one_of(p, "reason", ("requested_by_customer", "duplicate", "fraudulent")),
            "receipt_number": None,
            "metadata": merge_metadata({}, p.get("metadata")),
        },
    )
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] == ch["amount"]
    ch["refunds"]["data"].insert(0, refund)
    s.emit("refund.created", refund)
    s.emit("charge.refunded", ch, diff(before, ch))
    return refund


def complete_checkout(s: Store, session_id: str, card_number: str) -> Obj:
    """Pay a subscription-mode session as the hosted page would; declines change nothing."""
    session = s.get(session_id, "checkout.session", "session")
    if session["status"] != "open":
        raise StripeError("This Checkout Session is no longer active.", param="session")
    number = "".join(card_number.split())
    if number in CARDS and CARDS[number][1]:
        raise card_error(CARDS[number][1])
    pm = create_payment_method(s, number, session["customer"])  # raises on unknown numbers
    if session["customer"]:
        customer = s.get(session["customer"], "customer", "customer")
    else:
        customer = create_customer(s, {"email": session["customer_email"]})
        pm["customer"] = customer["id"]
    data = session["_subscription_data"]
    days = data["trial_period_days"]
    items = [(li["price"], li["quantity"]) for li in session["_line_items"]["data"]]
    sub = start_subscription(
        s,
        customer,
        items,
        pm=pm,
        metadata=dict(data["metadata"]),
        trial_end=s.now() + days * 86_400 if days else None,
    )
    session.update(
        status="complete",
        customer=customer["id"],
        subscription=sub["id"],
        invoice=sub["latest_invoice"],
        payment_status="no_payment_required" if days else "paid",
        customer_details={"email": customer["email"], "name": customer["name"]},
    )
    s.emit("checkout.session.completed", session)
    return session
