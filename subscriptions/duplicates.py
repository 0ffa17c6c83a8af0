"""A second live Stripe subscription for one customer: canceled, and its period refunded.

Checkout refuses a second one (services.checkout_session_start), but two payments can still
race: two sessions opened before either was paid, or a subscription made in the Stripe
dashboard. The customer keeps the subscription we applied first; the webhook handler of the
other calls `subscription_duplicate_resolve`:

1. cancel it at Stripe, with a comment naming the kept one (so later events of it, and staff
   in the dashboard, see why);
2. refund in full each payment of its current period (what it billed for time the kept one
   gives), one refund per payment with a key derived from that payment, so a rerun refunds
   nothing twice;
3. write an audit row saying what was done.

Every step checks current state first: a replayed event, or the later events of the same
subscription, change nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction

from core.audit import audit_record
from customers.models import Customer
from subscriptions import payments, refunds, stripe_api
from subscriptions.models import Payment, Refund

logger = logging.getLogger(__name__)
COMMENT_PREFIX = "Duplicate of "


@dataclass(frozen=True)
class DuplicateOutcome:
    subscription_id: str
    kept: str
    canceled_now: bool
    refunds: tuple[Refund, ...]

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds if r.status == Refund.Status.SUCCEEDED)


def is_canceled_duplicate(stripe_sub: dict) -> bool:
    """Whether `stripe_sub` is one we canceled as a duplicate (its later events still run
    step 2, for payments that were not yet visible the first time)."""
    comment = (stripe_sub.get("cancellation_details") or {}).get("comment") or ""
    return stripe_sub.get("status") == "canceled" and comment.startswith(COMMENT_PREFIX)


def subscription_duplicate_resolve(
    *, customer: Customer, stripe_sub: dict, kept: str, actor: str
) -> DuplicateOutcome:
    """Cancel the duplicate `stripe_sub` (if live) and refund its current period in full."""
    subscription_id = stripe_sub["id"]
    canceled_now = False
    if stripe_sub.get("status") not in stripe_api.ENDED_STATUSES:
        stripe_sub = stripe_api.subscription_cancel(
            subscription_id=subscription_id,
            idempotency_key=f"duplicate-cancel:{subscription_id}",
            comment=f"{COMMENT_PREFIX}{kept}: a second checkout was paid; canceled and refunded.",
        )
        canceled_now = True
    items = (stripe_sub.get("items") or {}).get("data") or []
    period_start = items[0].get("current_period_start") if items else stripe_sub.get("created")
    invoices = stripe_api.invoices_paid_with_payments(
        subscription_id=subscription_id, created_from=int(period_start or 0)
    )
    made: list[Refund] = []
    for invoice in invoices:
        for invoice_payment in (invoice.get("payments") or {}).get("data", []):
            payment = payments.payment_record(
                customer=customer, invoice=invoice, invoice_payment=invoice_payment
            )
            if payment is not None and (refund := _refund_in_full(payment, subscription_id)):
                made.append(refund)
    outcome = DuplicateOutcome(subscription_id, kept, canceled_now, tuple(made))
    if canceled_now or made:
        audit_record(
            action="subscription.duplicate_canceled",
            customer=customer,
            actor=actor,
            subscription=subscription_id,
            kept=kept,
            canceled_now=canceled_now,
            refunds=[r.pk for r in made],
            refunded=outcome.refunded,
        )
    logger.warning(
        "Duplicate subscription %s of %s (kept %s): canceled %s, refunded %s cents",
        subscription_id,
        customer.customer_id,
        kept,
        "now" if canceled_now else "before",
        outcome.refunded,
    )
    return outcome


def _refund_in_full(payment: Payment, subscription_id: str) -> Refund | None:
    """What is left of `payment`, refunded once (the row's key is derived from the payment)."""
    key = f"duplicate-refund:{payment.stripe_invoice_payment_id}"
    with transaction.atomic():
        refund = Refund.objects.select_for_update().filter(idempotency_key=key).first()
        if refund is None:
            left = payment.amount - payments.refunded_of(payment)
            if left <= 0:
                return None
            refund = Refund.objects.create(
                customer=payment.customer,
                payment=payment,
                amount=left,
                reason=Refund.Reason.DUPLICATE,
                description=f"Second subscription {subscription_id} canceled: refunded in full",
                idempotency_key=key,
                request_fingerprint=f"duplicate:{subscription_id}",
                request_key=f"duplicate:{subscription_id}",
                payment_reference=payment.reference,
                requested_by="stripe",
                rule=Refund.Rule.DUPLICATE_SUBSCRIPTION,
            )
        elif refund.status != Refund.Status.PENDING or refund.stripe_refund_id:
            return None  # made by an earlier run
    return refunds.refund_submit(refund=refund)
