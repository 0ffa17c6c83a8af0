"""The customer's payments, read the current way: an invoice's payments are InvoicePayments.

An invoice does not name its charge or payment intent (Stripe removed those fields in API
version 2025-03-31), and webhook events never carry `invoice.payments`. So:

1. `invoice.paid` → `payment_record_invoice`: the invoice's payments are listed from Stripe
   (`GET /v1/invoice_payments?invoice=...`) and each successful one is stored as a `Payment`.
2. Before a refund, `payments_sync_period` lists the subscription's paid invoices of the
   current period with `expand[]=data.payments`, so a missed or late webhook loses nothing.
3. `period_payments` is what a refund may take from: the current period's payments of the
   current subscription, newest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Sum

from customers.models import Customer
from subscriptions import stripe_api
from subscriptions.models import Payment, Refund, Subscription

logger = logging.getLogger(__name__)
# Refunds that take money off a payment (a failed or canceled one gave nothing back).
COUNTED = (Refund.Status.PENDING, Refund.Status.SUCCEEDED, Refund.Status.REQUIRES_ACTION)


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def invoice_subscription_id(invoice: dict) -> str:
    """The subscription an invoice bills (`parent.subscription_details.subscription`)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or ""
    return subscription.get("id", "") if isinstance(subscription, dict) else subscription


@dataclass(frozen=True)
class InvoiceRecorded:
    """The payments of an invoice, and whether recording it stored anything (a payment new
    or upgraded from a legacy row, or the invoice as the subscription's newest)."""

    payments: list[Payment]
    changed: bool


def payment_record(*, customer: Customer, invoice: dict, invoice_payment: dict) -> Payment | None:
    """Store one successful InvoicePayment of `invoice` once (unique on its Stripe id); a
    legacy row of the same invoice is upgraded to it."""
    return _payment_store(customer=customer, invoice=invoice, invoice_payment=invoice_payment)[0]


@transaction.atomic
def _payment_store(
    *, customer: Customer, invoice: dict, invoice_payment: dict
) -> tuple[Payment | None, bool]:
    """(the payment, whether this stored it) for one InvoicePayment; see payment_record."""
    amount = invoice_payment.get("amount_paid") or 0
    reference = stripe_api.payment_reference(invoice_payment)
    if invoice_payment.get("status") != "paid" or amount <= 0 or not reference:
        return None, False
    paid_at = _ts((invoice_payment.get("status_transitions") or {}).get("paid_at"))
    fields = {
        "customer": customer,
        "stripe_invoice_id": invoice["id"],
        "stripe_subscription_id": invoice_subscription_id(invoice),
        "reference": reference,
        "amount": amount,
        "currency": invoice_payment.get("currency") or invoice.get("currency") or "usd",
        "invoice_created_at": _ts(invoice.get("created")) or paid_at,
        "paid_at": paid_at,
    }
    legacy = Payment.objects.filter(stripe_invoice_payment_id=f"legacy:{invoice['id']}")
    upgraded = legacy.update(stripe_invoice_payment_id=invoice_payment["id"], **fields)
    payment, created = Payment.objects.get_or_create(
        stripe_invoice_payment_id=invoice_payment["id"], defaults=fields
    )
    return payment, created or bool(upgraded)


def payment_record_invoice(*, customer: Customer, invoice: dict) -> InvoiceRecorded:
    """Record the successful payments of a paid invoice (listed from Stripe unless the invoice
    came with `payments` expanded), and remember it as the subscription's newest invoice.
    Recording an invoice again stores nothing (`changed` is False)."""
    expanded = invoice.get("payments")
    listed = (
        expanded["data"]
        if isinstance(expanded, dict)
        else stripe_api.invoice_payments_paid(invoice["id"])
    )
    recorded = []
    changed = False
    for invoice_payment in listed:
        payment, stored = _payment_store(
            customer=customer, invoice=invoice, invoice_payment=invoice_payment
        )
        changed = changed or stored
        if payment is not None:
            recorded.append(payment)
    created = int(invoice.get("created") or 0)
    amount_paid = sum(p.amount for p in recorded)
    reference = recorded[0].reference if recorded else {}
    # A late delivery of an older invoice (or one of another subscription) is not the newest;
    # one already remembered as it is is left alone.
    newest = (
        Subscription.objects.filter(
            customer=customer,
            latest_invoice_created__lte=created,
            stripe_subscription_id__in=["", invoice_subscription_id(invoice)],
        )
        .exclude(
            latest_invoice_id=invoice["id"],
            latest_amount_paid=amount_paid,
            latest_payment_reference=reference,
            latest_invoice_created=created,
        )
        .update(
            latest_invoice_id=invoice["id"],
            latest_amount_paid=amount_paid,
            latest_payment_reference=reference,
            latest_invoice_created=created,
        )
    )
    return InvoiceRecorded(payments=recorded, changed=changed or bool(newest))


def payments_sync_period(*, customer: Customer) -> int:
    """Record the current period's payments that Stripe has and we do not; how many were new.
    A Stripe that cannot be reached leaves what is recorded (the refund then meets it)."""
    subscription = customer.subscription
    if not subscription.stripe_subscription_id or subscription.current_period_start is None:
        return 0
    try:
        invoices = stripe_api.invoices_paid_with_payments(
            subscription_id=subscription.stripe_subscription_id,
            created_from=int(subscription.current_period_start.timestamp()),
        )
    except stripe_api.StripeError as exc:
        logger.warning("Payments of %s not reconciled: %s", customer.customer_id, exc)
        return 0
    known = set(
        Payment.objects.filter(customer=customer).values_list(
            "stripe_invoice_payment_id", flat=True
        )
    )
    new = 0
    for invoice in invoices:
        for invoice_payment in (invoice.get("payments") or {}).get("data", []):
            if invoice_payment["id"] not in known and payment_record(
                customer=customer, invoice=invoice, invoice_payment=invoice_payment
            ):
                new += 1
    return new


def period_payments(subscription: Subscription) -> list[Payment]:
    """The current period's payments of the current subscription, newest first."""
    if not subscription.stripe_subscription_id or subscription.current_period_start is None:
        return []
    return list(
        Payment.objects.filter(
            customer_id=subscription.customer_id,
            stripe_subscription_id=subscription.stripe_subscription_id,
            invoice_created_at__gte=subscription.current_period_start,
        ).order_by("-invoice_created_at", "-id")
    )


def refunded_of(payment: Payment) -> int:
    """What refunds took (or are taking) off `payment`."""
    total = payment.refunds.filter(status__in=COUNTED).aggregate(total=Sum("amount"))["total"]
    return total or 0


def payment_for_reference(*, customer: Customer, reference: dict) -> Payment | None:
    """The recorded payment a Stripe refund was made against (by PaymentIntent or Charge)."""
    for kind in ("payment_intent", "charge"):
        if reference.get(kind):
            found = Payment.objects.filter(
                customer=customer, **{f"reference__{kind}": reference[kind]}
            ).first()
            if found is not None:
                return found
    return None
