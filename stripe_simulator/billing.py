"""Money movement: invoices, their payments (PaymentIntent, Charge, InvoicePayment), refunds.
Amounts are integer cents throughout.

As in the pinned API version, an invoice does not name its charge or payment intent: each
attempt to pay it is an InvoicePayment (``invoice.payments`` when expanded, or
``GET /v1/invoice_payments?invoice=...``) pointing at its PaymentIntent, whose
``latest_charge`` is the Charge. A charge's outcome comes from the card number behind its
payment method (``resources.CARDS``), so a declining test card declines every time.
"""

from __future__ import annotations

from typing import Any

from . import shapes
from .resources import CARDS, get_int, get_str, merge_metadata, one_of
from .state import ApiError, Obj, Store, diff, list_object, public

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}
EMBEDDED_LINES = 10  # an invoice embeds its first 10 lines; the rest via /v1/invoices/{id}/lines
CHARGE_DESCRIPTIONS = {
    "subscription_create": "Subscription creation",
    "subscription_cycle": "Subscription cycle",
    "subscription_update": "Subscription update",
}


def card_error(decline_code: str) -> ApiError:
    """402 ``card_declined`` (``stripe`` raises CardError), or 400 when there is no card at all."""
    if decline_code == "no_payment_method":
        message = "This customer has no attached payment source or default payment method."
        return ApiError(message, "payment_method", "resource_missing")
    message = DECLINE_MESSAGES.get(decline_code, "Your card was declined.")
    return ApiError(
        message, None, "card_declined", status=402, type="card_error", decline_code=decline_code
    )


def default_payment_method(s: Store, customer_id: str, sub: Obj | None = None) -> Obj | None:
    """The subscription's own payment method first, then the customer's invoice default."""
    customer = s.objects[customer_id]
    pm_id = (sub or {}).get("default_payment_method")
    pm_id = pm_id or customer["invoice_settings"]["default_payment_method"]
    return s.objects.get(pm_id) if pm_id else None


# ---------------------------------------------------------------- invoices
def new_invoice(s: Store, sub: Obj, lines: list[Obj], reason: str, period: tuple[int, int]) -> Obj:
    """A finalized invoice; the customer's credit balance is applied, as Stripe does.

    ``period_start/end`` follow Stripe: the *previous* period for cycle invoices (the usage
    period), ``created`` twice for the first invoice. Line items carry the service periods.
    """
    customer = s.objects[sub["customer"]]
    inv = shapes.invoice(s, sub=sub, customer_obj=customer, reason=reason, period=period)
    s.invoice_seq += 1
    total = sum(line["amount"] for line in lines)
    due = total + customer["balance"]
    for line in lines:
        line["invoice"] = inv["id"]
    inv.update(
        number=f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}",
        status="open",
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        starting_balance=customer["balance"],
        ending_balance=min(0, due),
        amount_due=max(0, due),
        amount_remaining=max(0, due),
        lines=list_object(
            lines[:EMBEDDED_LINES],
            f"/v1/invoices/{inv['id']}/lines",
            has_more=len(lines) > EMBEDDED_LINES,
        ),
        _lines=lines,
    )
    inv["status_transitions"]["finalized_at"] = s.now()
    customer.update(balance=min(0, due), currency=customer["currency"] or inv["currency"])
    customer["next_invoice_sequence"] += 1
    return s.add(inv)


def _attempt(s: Store, inv: Obj, pm: Obj, decline: str | None) -> Obj:
    """One attempt to pay an invoice: its PaymentIntent, InvoicePayment and Charge."""
    pi = shapes.payment_intent(
        s, amount=inv["amount_remaining"], currency=inv["currency"], customer_id=inv["customer"]
    )
    pi.update(description=CHARGE_DESCRIPTIONS.get(inv["billing_reason"]), payment_method=pm["id"])
    s.add(pi)
    payment = s.add(shapes.invoice_payment(s, inv=inv, pi=pi))
    for older in s.all("invoice_payment"):
        if older["invoice"] == inv["id"] and older is not payment:
            older["is_default"] = False
            if older["status"] == "open":
                older["status"] = "canceled"
                older["status_transitions"]["canceled_at"] = s.now()
    ch = s.add(shapes.charge(s, pi=pi, pm=pm, description=pi["description"]))
    ch.update(outcome=shapes.outcome(decline), _refunds=[])
    pi["latest_charge"] = ch["id"]
    if decline:
        error = card_error(decline).body()["error"]
        ch.update(status="failed", failure_code=error["code"], failure_message=error["message"])
        pi["last_payment_error"] = {
            "charge": ch["id"],
            "code": error["code"],
            "decline_code": decline,
            "doc_url": error.get("doc_url"),
            "message": error["message"],
            "payment_method": public(pm),
            "type": "card_error",
        }
        s.emit("charge.failed", ch)
        return ch
    amount = pi["amount"]
    pi.update(status="succeeded", amount_received=amount)
    ch.update(status="succeeded", paid=True, captured=True, amount_captured=amount)
    payment.update(status="paid", amount_paid=amount)
    payment["status_transitions"]["paid_at"] = s.now()
    s.emit("charge.succeeded", ch)
    s.emit("invoice_payment.paid", payment)
    return ch


def pay_invoice(s: Store, inv: Obj, pm: Obj | None, force_decline: str | None = None) -> Any:
    """Try to collect ``amount_remaining``; returns the decline code, or None once paid."""
    if inv["amount_remaining"] > 0:
        inv.update(attempt_count=inv["attempt_count"] + 1, attempted=True)
        if pm is None and not force_decline:
            return "no_payment_method"
        if pm is None:
            return force_decline
        decline = force_decline or CARDS[pm["_number"]][1]
        _attempt(s, inv, pm, decline)
        if decline:
            return decline
        inv["amount_paid"] += inv["amount_remaining"]
    inv.update(status="paid", amount_remaining=0, attempted=True, auto_advance=False)
    inv["status_transitions"]["paid_at"] = s.now()
    return None


def emit_invoice(s: Store, inv: Obj) -> None:
    if inv["status"] == "paid":
        s.emit("invoice.paid", inv)
        s.emit("invoice.payment_succeeded", inv)
    else:
        s.emit("invoice.payment_failed", inv)


def invoice_payments_of(s: Store, invoice_id: str) -> list[Obj]:
    return [p for p in s.all("invoice_payment") if p["invoice"] == invoice_id]


def include_payments(s: Store, inv: Obj) -> Obj:
    """``invoice.payments``, returned only when expanded."""
    payments = public(invoice_payments_of(s, inv["id"]))
    return list_object(payments, f"/v1/invoices/{inv['id']}/payments")


def list_invoice_payments(s: Store, p: Obj) -> Obj:
    """``GET /v1/invoice_payments``: by invoice, status, or the payment it was made with."""
    items = s.all("invoice_payment")
    if p.get("invoice"):
        items = [x for x in items if x["invoice"] == p["invoice"]]
    if p.get("status"):
        status = one_of(p, "status", ("canceled", "open", "paid"))
        items = [x for x in items if x["status"] == status]
    payment = p.get("payment") or {}
    if payment:
        kind = one_of(payment, "type", ("payment_intent", "payment_record"))
        ref = get_str(payment, kind)
        items = [x for x in items if x["payment"]["type"] == kind and x["payment"][kind] == ref]
    return s.page(items, p, "/v1/invoice_payments")


def list_invoice_lines(s: Store, p: Obj, invoice_id: str) -> Obj:
    inv = s.get(invoice_id, "invoice", "invoice")
    return s.page(inv["_lines"], p, f"/v1/invoices/{invoice_id}/lines")


# ---------------------------------------------------------------- refunds
def include_refunds(s: Store, ch: Obj) -> Obj:
    """``charge.refunds``, returned only when expanded (since 2022-11-15)."""
    refunds = [public(s.objects[r]) for r in ch.get("_refunds", [])]
    return list_object(refunds, f"/v1/charges/{ch['id']}/refunds")


def create_refund(s: Store, p: Obj) -> Obj:
    """Refund all or part of what is left on a charge; never more (checked under the lock)."""
    if p.get("charge"):
        ch = s.get(p["charge"], "charge", "charge")
    elif p.get("payment_intent"):
        pi = s.get(p["payment_intent"], "payment_intent", "payment_intent")
        if not pi["latest_charge"]:
            message = f"PaymentIntent {pi['id']} does not have a successful charge to refund."
            raise ApiError(message, "payment_intent")
        ch = s.get(pi["latest_charge"], "charge", "payment_intent")
    else:
        raise ApiError("One of charge or payment_intent is required.", "charge")
    if ch["status"] != "succeeded":
        raise ApiError(f"Charge {ch['id']} did not succeed and cannot be refunded.", "charge")
    remaining = ch["amount"] - ch["amount_refunded"]
    if remaining <= 0:
        message = f"Charge {ch['id']} has already been refunded."
        raise ApiError(message, "charge", "charge_already_refunded")
    amount = get_int(p, "amount", remaining)
    if amount <= 0:
        raise ApiError("Invalid positive integer", "amount", "parameter_invalid_integer")
    if amount > remaining:
        message = (
            f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on "
            f"charge (${remaining / 100:.2f})"
        )
        raise ApiError(message, "amount", "amount_too_large")
    reasons = ("requested_by_customer", "duplicate", "fraudulent")
    reason = one_of(p, "reason", reasons)
    metadata = merge_metadata({}, p.get("metadata"))
    before = public(ch)
    refund = s.add(shapes.refund(s, ch=ch, amount=amount, reason=reason, metadata=metadata))
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] == ch["amount"]
    ch["_refunds"].insert(0, refund["id"])
    s.emit("refund.created", refund)
    s.emit("charge.refunded", ch, diff(before, ch))
    return refund
