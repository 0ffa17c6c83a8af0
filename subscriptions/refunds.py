"""Refunds: an amount asked for, pro-rated, or all that remains, exactly once.

A refund takes from the current period's payments (subscriptions.payments), newest first,
each at most what is left of it (paid minus refunded), one Stripe refund per payment. The
amount follows one rule, named in the answer as `rule`:

- `amount`: the amount asked for. It wins over `use_prorated` when both are sent;
- `prorated`: each payment's unused share, amount × days remaining ÷ days it pays for (from
  its invoice to the period end; a started day counts as used), less what pro-rated refunds
  already took from it (the unused share is refunded once);
- `remaining`: all that is left.

1. Reconcile the period's payments with Stripe (a missed webhook loses nothing).
2. Under a lock on the customer's subscription row: find an identical recent request (the
   same client key, or the same ask, reason and description within the dedup window,
   whatever was invoiced since), which gets its refunds back; else decide the amount and
   refuse what is not refundable.
3. Write one refund row per payment `pending`, each with its own idempotency key; commit.
4. Call Stripe for each with its key; mark each row with Stripe's answer.
A crash between 3 and 4 leaves pending rows: `refund_reconcile` (and the `charge.refunded`
webhook) complete them with the same keys, so Stripe never refunds twice and never refunds
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
from subscriptions import payments, stripe_api
from subscriptions.models import Payment, Refund, Subscription
from subscriptions.services import require_stripe

Rule = Refund.Rule


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
    """The refund rows of one request (one per payment, newest payment first)."""

    refunds: tuple[Refund, ...]
    duplicate: bool
    rule: str

    @property
    def refund(self) -> Refund:
        return self.refunds[0]

    @property
    def amount(self) -> int:
        return sum(r.amount for r in self.refunds)


def refund_group(refund: Refund | None) -> list[Refund]:
    """The rows of the request `refund` belongs to (one per payment it spans)."""
    if refund is None:
        return []
    if not refund.request_key:
        return [refund]
    return list(Refund.objects.filter(request_key=refund.request_key).order_by("id"))


def refund_outcome(rows: list[Refund]) -> tuple[bool, str | None]:
    """Whether the refund of these rows is issued, and if not, why (for the caller to show)."""
    if not rows:
        return False, "No refund was made."
    statuses = {row.status for row in rows}
    if statuses == {Refund.Status.SUCCEEDED}:
        return True, None
    if Refund.Status.FAILED in statuses:
        failed = next(row for row in rows if row.status == Refund.Status.FAILED)
        return False, f"Stripe refused the refund: {failed.failure_message}"
    if Refund.Status.REQUIRES_ACTION in statuses:
        return False, "Stripe needs action on the refund before it completes (requires_action)."
    if Refund.Status.PENDING in statuses:
        return False, "Stripe has not confirmed the refund yet; it completes automatically."
    return False, "The refund was canceled."


def _no_payment(customer: Customer) -> ApplicationError:
    return ApplicationError(
        f"No payment found for {customer.customer_id}: the customer is on a trial or has no "
        "successful payment in the current period to refund.",
        error="No payment found",
        status_code=status.HTTP_409_CONFLICT,
    )


def _left(period: list[Payment]) -> list[tuple[Payment, int]]:
    """Each payment with what is still refundable on it."""
    return [(payment, max(0, payment.amount - payments.refunded_of(payment))) for payment in period]


def _prorated_refunded_of(payment: Payment) -> int:
    refunded = payment.refunds.filter(status__in=payments.COUNTED, rule=Rule.PRORATED)
    return refunded.aggregate(total=Sum("amount"))["total"] or 0


def _split(
    left: list[tuple[Payment, int]],
    *,
    amount: int | None,
    use_prorated: bool,
    subscription: Subscription,
) -> tuple[str, list[tuple[Payment, int]]]:
    """The rule that applies and the amount to take from each payment."""
    if amount is not None:
        parts, rest = [], amount
        for payment, available in left:
            take = min(available, rest)
            if take > 0:
                parts.append((payment, take))
                rest -= take
        return Rule.AMOUNT, parts
    if use_prorated:
        end, now = subscription.current_period_end, timezone.now()
        start = subscription.current_period_start
        parts = []
        for payment, available in left:
            if end is None or start is None:
                break
            share = prorated_refund_amount(
                amount_paid=payment.amount,
                period_start=max(start, payment.invoice_created_at),
                period_end=end,
                now=now,
            )
            # The unused share is refunded once: a pro-rated refund made before (e.g. by a
            # cancel-immediate, repeated later) already covers what is unused now.
            share -= _prorated_refunded_of(payment)
            if min(share, available) > 0:
                parts.append((payment, min(share, available)))
        return Rule.PRORATED, parts
    return Rule.REMAINING, [(payment, available) for payment, available in left if available > 0]


def _check_amount(
    customer: Customer, *, paid: int, requested: int, refundable: int, rule: str
) -> None:
    if refundable <= 0:
        raise ApplicationError(
            f"The payments of {customer.customer_id} in this period are already fully refunded.",
            error="Nothing to refund",
            status_code=status.HTTP_409_CONFLICT,
            details={"amount_paid": paid, "refundable": 0},
        )
    if rule == Rule.PRORATED and requested <= 0:
        raise ApplicationError(
            f"Nothing of the current period of {customer.customer_id} is unused: a pro-rated "
            "refund is 0 cents.",
            error="Nothing to refund",
            status_code=status.HTTP_409_CONFLICT,
            details={"amount_paid": paid, "refundable": refundable, "prorated": 0},
        )
    if requested <= 0 or requested > refundable:
        raise ApplicationError(
            f"Refund of {requested} cents is not possible: {refundable} of {paid} cents paid "
            "in this period remain refundable.",
            error="Invalid refund amount",
            status_code=status.HTTP_409_CONFLICT if requested > 0 else status.HTTP_400_BAD_REQUEST,
            details={"requested": requested, "refundable": refundable},
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
    """Refund from the current period's payments: `amount`, pro-rated, or all that remains."""
    if not customer.subscription.stripe_subscription_id:
        raise _no_payment(customer)  # never paid through Stripe (a trial), configured or not
    require_stripe()
    payments.payments_sync_period(customer=customer)
    rows, duplicate = _refund_reserve(
        customer=customer,
        reason=reason,
        amount=amount,
        use_prorated=use_prorated,
        description=description,
        client_key=client_key,
        dedup_window=dedup_window,
        actor=actor,
    )
    if not duplicate:
        rows = refund_submit_all(refunds=rows)
    return RefundResult(refunds=tuple(rows), duplicate=duplicate, rule=rows[0].rule)


def _request_fingerprint(
    *,
    customer: Customer,
    client_key: str,
    amount: int | None,
    use_prorated: bool,
    reason: str,
    description: str,
) -> str:
    """What makes two refund requests the same one: the client's key, or else what was asked.

    Never the payments or invoices of the moment: a retry sent after a new invoice (an
    upgrade's proration) is still the first request, so it gets the first refund back
    instead of a second one. The dedup window, not the invoices, says when an identical
    request is a new one.
    """
    asked = "prorated" if use_prorated and amount is None else str(amount)
    source = client_key or f"{asked}|{reason}|{description}"
    return hashlib.sha256(f"{customer.pk}|{source}".encode()).hexdigest()


def _same_request(
    group: list[Refund],
    *,
    amount: int | None,
    use_prorated: bool,
    reason: str,
    description: str,
) -> bool:
    """Whether a request asks for what the refund rows `group` were made for."""
    first = group[0]
    unsized = Rule.PRORATED if use_prorated else Rule.REMAINING
    rule = Rule.AMOUNT if amount is not None else unsized
    return (
        first.rule == rule
        and first.reason == reason
        and first.description == description
        and (amount is None or sum(r.amount for r in group) == amount)
    )


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
) -> tuple[list[Refund], bool]:
    subscription = Subscription.objects.select_for_update().get(customer=customer)
    # An identical request is answered first, whatever was invoiced since: even a period
    # with no payment yet (a declined renewal) gives a retry its refund back, not a 409.
    fingerprint = _request_fingerprint(
        customer=customer,
        client_key=client_key,
        amount=amount,
        use_prorated=use_prorated,
        reason=reason,
        description=description,
    )
    window = dedup_window or (
        timedelta(hours=24)
        if client_key
        else timedelta(seconds=settings.REFUND_DEDUP_WINDOW_SECONDS)
    )
    earlier = (
        Refund.objects.filter(
            customer=customer,
            request_fingerprint=fingerprint,
            created_at__gte=timezone.now() - window,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if earlier is not None:
        group = refund_group(earlier)
        if client_key and not _same_request(
            group, amount=amount, use_prorated=use_prorated, reason=reason, description=description
        ):
            # As Stripe answers a key reused with other parameters: the first request stands.
            raise ApplicationError(
                f"The Idempotency-Key {client_key!r} was first used for another refund request "
                f"({group[0].rule}, {sum(r.amount for r in group)} cents, reason "
                f"{group[0].reason}); use a new key for a new request.",
                error="Idempotency key reused",
                status_code=status.HTTP_409_CONFLICT,
                details={"first_refund_id": group[0].pk},
            )
        return group, True

    period = payments.period_payments(subscription)
    if not period:
        raise _no_payment(customer)
    left = _left(period)
    rule, parts = _split(left, amount=amount, use_prorated=use_prorated, subscription=subscription)
    requested = amount if amount is not None else sum(take for _, take in parts)
    paid = sum(payment.amount for payment in period)
    _check_amount(
        customer, paid=paid, requested=requested, refundable=sum(a for _, a in left), rule=rule
    )
    request_key = uuid.uuid4().hex
    return [
        Refund.objects.create(
            customer=customer,
            payment=payment,
            amount=take,
            reason=reason,
            description=description,
            idempotency_key=f"refund:{customer.customer_id}:{uuid.uuid4().hex}",
            request_fingerprint=fingerprint,
            request_key=request_key,
            payment_reference=payment.reference,
            requested_by=actor,
            rule=rule,
        )
        for payment, take in parts
    ], False


def refund_check(*, customer: Customer, amount: int | None) -> None:
    """Raise what a refund of `amount` (None: pro-rated or all) would raise, writing nothing,
    so a cancellation is not done when its refund would be refused."""
    if not customer.subscription.stripe_subscription_id:
        raise _no_payment(customer)
    payments.payments_sync_period(customer=customer)
    subscription = Subscription.objects.get(customer=customer)
    period = payments.period_payments(subscription)
    if not period:
        raise _no_payment(customer)
    left = _left(period)
    refundable = sum(a for _, a in left)
    _check_amount(
        customer,
        paid=sum(p.amount for p in period),
        requested=refundable if amount is None else amount,
        refundable=refundable,
        rule=Rule.AMOUNT,
    )


def refund_submit_all(*, refunds: list[Refund]) -> list[Refund]:
    """Send the parts of one request in turn. Stripe unavailable: the rest stay pending for
    `refund_reconcile`. Stripe refusing one: the parts not sent yet are canceled (nothing is
    refunded later without the caller knowing), and the refusal is raised."""
    sent: list[Refund] = []
    for index, refund in enumerate(refunds):
        if refund.status != Refund.Status.PENDING or refund.stripe_refund_id:
            sent.append(refund)
            continue
        try:
            sent.append(refund_submit(refund=refund))
        except ApplicationError as exc:
            if exc.status_code != status.HTTP_503_SERVICE_UNAVAILABLE:
                later = [r.pk for r in refunds[index + 1 :]]
                Refund.objects.filter(pk__in=later, status=Refund.Status.PENDING).update(
                    status=Refund.Status.CANCELED,
                    failure_message="Not sent: Stripe refused an earlier part of this refund.",
                )
            raise
    return sent


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
    # A row made from the webhook before ours was written (a crash between Stripe's answer
    # and our commit) is the same refund: ours, with its payment and reason, stays.
    Refund.objects.filter(stripe_refund_id=stripe_refund["id"], rule=Rule.EXTERNAL).exclude(
        pk=refund.pk
    ).delete()
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


def _stripe_reference(stripe_refund: dict) -> dict:
    for kind in ("payment_intent", "charge"):
        value = stripe_refund.get(kind)
        if isinstance(value, dict):
            value = value.get("id")
        if value:
            return {kind: value}
    return {}


def refund_record_from_stripe(*, customer: Customer, stripe_refund: dict) -> Refund:
    """The row for a refund Stripe reports (charge.refunded), created if made outside this app."""
    row_id = (stripe_refund.get("metadata") or {}).get("refund_row")
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund["id"]).first()
    if refund is None and row_id and row_id.isdigit():
        refund = Refund.objects.filter(pk=int(row_id), customer=customer).first()
    if refund is None:
        reference = _stripe_reference(stripe_refund)
        reason = stripe_refund.get("reason") or Refund.Reason.REQUESTED_BY_CUSTOMER
        refund, _ = Refund.objects.get_or_create(
            stripe_refund_id=stripe_refund["id"],
            defaults={
                "customer": customer,
                "payment": payments.payment_for_reference(customer=customer, reference=reference),
                "amount": stripe_refund["amount"],
                "reason": reason
                if reason in Refund.Reason.values
                else Refund.Reason.REQUESTED_BY_CUSTOMER,
                "description": "Made outside this service (found via charge.refunded)",
                "idempotency_key": f"external:{stripe_refund['id']}",
                "request_fingerprint": f"external:{stripe_refund['id']}",
                "payment_reference": reference,
                "requested_by": "stripe",
                "rule": Rule.EXTERNAL,
            },
        )
    refund_apply_stripe(refund=refund, stripe_refund=stripe_refund)
    refund.refresh_from_db()
    return refund
