"""Refunds: full, partial or pro-rated, exactly once.

1. Under a lock on the customer's subscription row: work out the amount, refuse what is
   not refundable, and find an identical recent request (which gets its refund back).
2. Write the refund row `pending` with its idempotency key, and commit.
3. Call Stripe with that key; mark the row with Stripe's answer.
A crash between 2 and 3 leaves a pending row: `refund_reconcile` (and the `charge.refunded`
webhook) complete it with the same key, so Stripe never refunds twice and never refunds
without a row.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from rest_framework import status

from core.errors import ApplicationError
from customers.models import Customer
from subscriptions import stripe_api
from subscriptions.models import Refund, Subscription
from subscriptions.services import require_stripe

_COUNTED = (Refund.Status.PENDING, Refund.Status.SUCCEEDED, Refund.Status.REQUIRES_ACTION)


def prorated_refund_amount(
    *, amount_paid: int, period_start: datetime, period_end: datetime, now: datetime
) -> int:
    """amount paid × days remaining / days in period, in integer cents, half-up.

    Days in period: whole days between period start and end. Days used: days started
    since the period start (a started day counts as used). Example from the guide:
    10000 cents, 30-day period, 10 days used → 10000 × 20 / 30 = 6666.67 → 6667.
    """
    days_in_period = max(1, round((period_end - period_start).total_seconds() / 86400))
    elapsed = max(0.0, (now - period_start).total_seconds() / 86400)
    days_used = min(days_in_period, math.ceil(elapsed))
    remaining = days_in_period - days_used
    amount = Decimal(amount_paid) * remaining / days_in_period
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    duplicate: bool


def _no_payment(customer: Customer) -> ApplicationError:
    return ApplicationError(
        f"No payment found for {customer.customer_id}: the customer is on a trial or has no "
        "successful payment to refund.",
        error="No payment found",
        status_code=status.HTTP_409_CONFLICT,
    )


def _already_refunded(subscription: Subscription) -> int:
    return (
        Refund.objects.filter(
            customer_id=subscription.customer_id,
            payment_reference=subscription.latest_payment_reference,
            status__in=_COUNTED,
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )


def refund_request(
    *,
    customer: Customer,
    reason: str,
    amount: int | None = None,
    use_prorated: bool = False,
    description: str = "",
    client_key: str = "",
    dedup_window: timedelta | None = None,
    actor: str = "",
) -> RefundResult:
    """Refund the current period's payment: `amount`, pro-rated, or all that remains."""
    require_stripe()
    refund, duplicate = _refund_reserve(
        customer=customer,
        reason=reason,
        amount=amount,
        use_prorated=use_prorated,
        description=description,
        client_key=client_key,
        dedup_window=dedup_window,
        actor=actor,
    )
    if duplicate or refund.status != Refund.Status.PENDING:
        return RefundResult(refund=refund, duplicate=duplicate)
    return RefundResult(refund=refund_submit(refund=refund), duplicate=False)


@transaction.atomic
def _refund_reserve(
    *,
    customer: Customer,
    reason: str,
    amount: int | None,
    use_prorated: bool,
    description: str,
    client_key: str,
    dedup_window: timedelta | None,
    actor: str,
) -> tuple[Refund, bool]:
    subscription = Subscription.objects.select_for_update().get(customer=customer)
    _require_payment(customer, subscription)

    asked = "prorated" if use_prorated and amount is None else str(amount)
    fingerprint_source = (
        client_key or f"{subscription.latest_invoice_id}|{asked}|{reason}|{description}"
    )
    fingerprint = hashlib.sha256(f"{customer.pk}|{fingerprint_source}".encode()).hexdigest()
    window = dedup_window or (
        timedelta(hours=24)
        if client_key
        else timedelta(seconds=settings.REFUND_DEDUP_WINDOW_SECONDS)
    )
    earlier = Refund.objects.filter(
        customer=customer, request_fingerprint=fingerprint, created_at__gte=timezone.now() - window
    ).first()
    if earlier is not None:
        return earlier, True

    remaining = subscription.latest_amount_paid - _already_refunded(subscription)
    if amount is None and use_prorated:
        if not (subscription.current_period_start and subscription.current_period_end):
            raise _no_payment(customer)
        amount = min(
            remaining,
            prorated_refund_amount(
                amount_paid=subscription.latest_amount_paid,
                period_start=subscription.current_period_start,
                period_end=subscription.current_period_end,
                now=timezone.now(),
            ),
        )
    elif amount is None:
        amount = remaining
    _check_amount(customer, subscription, amount, remaining)
    refund = Refund.objects.create(
        customer=customer,
        amount=amount,
        reason=reason,
        description=description,
        idempotency_key=f"refund:{customer.customer_id}:{uuid.uuid4().hex}",
        request_fingerprint=fingerprint,
        payment_reference=subscription.latest_payment_reference,
        requested_by=actor,
    )
    return refund, False


def _require_payment(customer: Customer, subscription: Subscription) -> None:
    if (
        subscription.status == Subscription.Status.TRIALING
        or not subscription.latest_amount_paid
        or not subscription.latest_payment_reference
    ):
        raise _no_payment(customer)


def _check_amount(customer: Customer, subscription: Subscription, amount: int, remaining: int):
    if remaining <= 0:
        raise ApplicationError(
            f"The payment of {customer.customer_id} is already fully refunded.",
            error="Nothing to refund",
            status_code=status.HTTP_409_CONFLICT,
            details={"amount_paid": subscription.latest_amount_paid, "refundable": 0},
        )
    if amount <= 0 or amount > remaining:
        raise ApplicationError(
            f"Refund of {amount} cents is not possible: {remaining} of "
            f"{subscription.latest_amount_paid} cents remain refundable.",
            error="Invalid refund amount",
            status_code=status.HTTP_409_CONFLICT if amount > 0 else status.HTTP_400_BAD_REQUEST,
            details={"requested": amount, "refundable": remaining},
        )


def refund_check(*, customer: Customer, amount: int | None) -> None:
    """Raise what a refund of `amount` (None: pro-rated or all) would raise, writing nothing,
    so a cancellation is not done when its refund would be refused."""
    subscription = Subscription.objects.get(customer=customer)
    _require_payment(customer, subscription)
    remaining = subscription.latest_amount_paid - _already_refunded(subscription)
    _check_amount(customer, subscription, remaining if amount is None else amount, remaining)


def refund_submit(*, refund: Refund) -> Refund:
    """Send a pending refund to Stripe (same idempotency key every time) and record the answer."""
    try:
        created = stripe_api.refund_create(
            reference=refund.payment_reference,
            amount=refund.amount,
            reason=refund.reason,
            metadata={"refund_row": str(refund.pk), "customer_id": refund.customer.customer_id},
            idempotency_key=refund.idempotency_key,
        )
    except stripe_api.StripeError as exc:
        if exc.retryable:
            # Left pending: refund_reconcile retries it with the same key.
            raise ApplicationError(
                f"Stripe is unavailable ({exc.user_message}); the refund is recorded as pending "
                "and will be completed automatically.",
                error="Payment provider unavailable",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                details={"refund_id": refund.pk},
            ) from exc
        Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).update(
            status=Refund.Status.FAILED, failure_message=exc.user_message[:2000]
        )
        refund.refresh_from_db()
        raise ApplicationError(
            f"Stripe refused the refund: {exc.user_message}",
            error="Refund failed",
            status_code=status.HTTP_402_PAYMENT_REQUIRED,
            details={"refund_id": refund.pk, "code": exc.code},
        ) from exc
    refund_apply_stripe(refund=refund, stripe_refund=created)
    refund.refresh_from_db()
    return refund


def refund_apply_stripe(*, refund: Refund, stripe_refund: dict) -> None:
    stripe_status = stripe_refund.get("status") or "pending"
    if stripe_status not in Refund.Status.values:
        stripe_status = Refund.Status.PENDING
    Refund.objects.filter(pk=refund.pk).update(
        stripe_refund_id=stripe_refund["id"], status=stripe_status
    )


def refund_reconcile(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Resubmit refunds left pending without a Stripe id (a crash or outage mid-request)."""
    count = 0
    cutoff = timezone.now() - older_than
    for refund in Refund.objects.filter(
        status=Refund.Status.PENDING, stripe_refund_id__isnull=True, created_at__lt=cutoff
    ).select_related("customer"):
        try:
            refund_submit(refund=refund)
        except ApplicationError:
            continue
        count += 1
    return count


def refund_record_from_stripe(*, customer: Customer, stripe_refund: dict) -> Refund:
    """The row for a refund Stripe reports (charge.refunded), created if made outside this app."""
    row_id = (stripe_refund.get("metadata") or {}).get("refund_row")
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund["id"]).first()
    if refund is None and row_id and row_id.isdigit():
        refund = Refund.objects.filter(pk=int(row_id), customer=customer).first()
    if refund is None:
        reference = (
            {"charge": stripe_refund["charge"]}
            if stripe_refund.get("charge")
            else {"payment_intent": stripe_refund.get("payment_intent")}
        )
        reason = stripe_refund.get("reason") or Refund.Reason.REQUESTED_BY_CUSTOMER
        refund, _ = Refund.objects.get_or_create(
            stripe_refund_id=stripe_refund["id"],
            defaults={
                "customer": customer,
                "amount": stripe_refund["amount"],
                "reason": reason
                if reason in Refund.Reason.values
                else Refund.Reason.REQUESTED_BY_CUSTOMER,
                "description": "Made outside this service (found via charge.refunded)",
                "idempotency_key": f"external:{stripe_refund['id']}",
                "request_fingerprint": f"external:{stripe_refund['id']}",
                "payment_reference": reference,
                "requested_by": "stripe",
            },
        )
    refund_apply_stripe(refund=refund, stripe_refund=stripe_refund)
    refund.refresh_from_db()
    return refund
