"""Money movement: charges, invoices and refunds. Amounts are integer cents throughout.

A charge's outcome comes from the card number behind its payment method (``resources.CARDS``),
so a declining test card declines every time, as on Stripe.
"""

from __future__ import annotations

from typing import Any

from .resources import CARDS, get_int, merge_metadata, one_of
from .state import ApiError, Obj, Store, diff, list_object, public

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
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


def charge(
    s: Store, inv: Obj, pm: Obj | None, force_decline: str | None
) -> tuple[Obj, Obj, str | None]:
    """Charge an invoice's remaining amount: a PaymentIntent, its Charge, and any decline code."""
    decline = force_decline or (CARDS[pm["_number"]][1] if pm else "generic_decline")
    error = card_error(decline).body()["error"] if decline else None
    amount, ok = inv["amount_remaining"], decline is None
    common = {"amount": amount, "currency": inv["currency"], "customer": inv["customer"]}
    common.update(invoice=inv["id"], payment_method=pm and pm["id"])
    pi = s.add("payment_intent", "pi_", {**common, "amount_received": amount if ok else 0})
    pi.update(status="succeeded" if ok else "requires_payment_method", last_payment_error=error)
    ch = s.add("charge", "ch_", {**common, "payment_intent": pi["id"], "paid": ok})
    ch.update(status="succeeded" if ok else "failed", amount_refunded=0, refunded=False)
    ch.update(failure_code=error and error["code"], failure_message=error and error["message"])
    card = pm and {"brand": pm["card"]["brand"], "last4": pm["card"]["last4"]}
    ch["payment_method_details"] = {"type": "card", "card": card}
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
    details = {"subscription": sub["id"], "metadata": dict(sub["metadata"])}
    fields = {
        "customer": customer["id"],
        "subscription": sub["id"],
        "parent": {"type": "subscription_details", "subscription_details": details},
        "billing_reason": reason,
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
        "attempt_count": 0,
        "paid": False,
        "charge": None,
        "payment_intent": None,
        "period_start": period[0],
        "period_end": period[1],
        "status_transitions": {"finalized_at": s.now(), "paid_at": None},
    }
    inv = s.add("invoice", "in_", fields)
    inv["lines"] = list_object(lines, f"/v1/invoices/{inv['id']}/lines")
    customer["balance"] = min(0, due)
    return inv


def pay_invoice(s: Store, inv: Obj, pm: Obj | None, force_decline: str | None = None) -> Any:
    """Try to collect ``amount_remaining``; returns the decline code, or None once paid."""
    if inv["amount_remaining"] > 0:
        inv["attempt_count"] += 1
        if pm is None and not force_decline:
            return "no_payment_method"
        pi, ch, decline = charge(s, inv, pm, force_decline)
        inv["charge"], inv["payment_intent"] = ch["id"], pi["id"]
        if decline:
            return decline
        inv["amount_paid"] = inv["amount_remaining"]
    inv.update(status="paid", paid=True, amount_remaining=0)
    inv["status_transitions"]["paid_at"] = s.now()
    return None


def emit_invoice(s: Store, inv: Obj) -> None:
    if inv["status"] == "paid":
        s.emit("invoice.paid", inv)
        s.emit("invoice.payment_succeeded", inv)
    else:
        s.emit("invoice.payment_failed", inv)


def create_refund(s: Store, p: Obj) -> Obj:
    """Refund all or part of what is left on a charge; never more (checked under the lock)."""
    if p.get("charge"):
        ch = s.get(p["charge"], "charge", "charge")
    elif p.get("payment_intent"):
        pi = s.get(p["payment_intent"], "payment_intent", "payment_intent")
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
    fields = {"amount": amount, "charge": ch["id"], "payment_intent": ch["payment_intent"]}
    fields.update(currency=ch["currency"], status="succeeded", reason=one_of(p, "reason", reasons))
    fields["metadata"] = merge_metadata({}, p.get("metadata"))
    before = public(ch)
    refund = s.add("refund", "re_", fields)
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] == ch["amount"]
    ch["refunds"]["data"].insert(0, refund)
    s.emit("refund.created", refund)
    s.emit("charge.refunded", ch, diff(before, ch))
    return refund
