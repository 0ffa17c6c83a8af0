"""What the staff back-office (the admin) asks for that no other workflow offers yet: the
refund figures shown before a refund is confirmed, and the deletion sweep for one customer.

Reads and calls only; the rules stay in the services they call (subscriptions.refunds,
lifecycle.deletion).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus

from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from customers.models import CleanupRecord, Customer, DeletedCustomer
from deployments.kubernetes import DeploymentError
from lifecycle import deletion
from subscriptions import payments, refunds
from subscriptions.models import Payment, Subscription


@dataclass(frozen=True)
class PaymentPart:
    """One payment of the current period: what is left of it, and its pro-rated share."""

    payment: Payment
    left: int
    prorated: int


@dataclass(frozen=True)
class RefundPreview:
    """What a refund can be now, worked out as subscriptions.refunds does it (a refund takes
    from the current period's payments, newest first, each at most what is left of it):
    the pro-rated amount, and at most `maximum`."""

    parts: list[PaymentPart]
    period_start: datetime | None
    period_end: datetime | None

    @property
    def amount_paid(self) -> int:
        return sum(part.payment.amount for part in self.parts)

    @property
    def already_refunded(self) -> int:
        return self.amount_paid - self.maximum

    @property
    def maximum(self) -> int:
        return sum(part.left for part in self.parts)

    @property
    def prorated(self) -> int:
        return sum(part.prorated for part in self.parts)

    @property
    def refundable(self) -> bool:
        return self.maximum > 0


def refund_preview(*, customer: Customer) -> RefundPreview | None:
    """The refund figures of the customer's current period from the recorded payments; None
    when there is none (a trial, or nothing paid yet). Writes nothing and calls no one: the
    refund itself reconciles the payments with Stripe first, so it may find one more."""
    subscription = Subscription.objects.filter(customer=customer).first()
    if subscription is None:
        return None
    period = payments.period_payments(subscription)
    if not period:
        return None
    start, end, now = (
        subscription.current_period_start,
        subscription.current_period_end,
        timezone.now(),
    )
    parts = []
    for payment in period:
        left = max(0, payment.amount - payments.refunded_of(payment))
        share = 0
        if start is not None and end is not None:
            share = refunds.prorated_refund_amount(
                amount_paid=payment.amount,
                period_start=max(start, payment.invoice_created_at),
                period_end=end,
                now=now,
            )
        parts.append(PaymentPart(payment=payment, left=left, prorated=min(share, left)))
    return RefundPreview(parts=parts, period_start=start, period_end=end)


def due_cleanup(*, customer: Customer, now: datetime | None = None) -> CleanupRecord | None:
    """The customer's scheduled deletion if its retention window has ended."""
    return CleanupRecord.objects.filter(
        customer=customer,
        status=CleanupRecord.Status.SCHEDULED,
        scheduled_for__lte=now or timezone.now(),
    ).first()


def customer_delete_due(*, customer: Customer, actor: str) -> dict[str, int]:
    """Run the deletion sweep for this one customer, now: what `cleanup_execute_due` does
    for each due record (namespace, Stripe subscription, every row, the anonymised record,
    the audit row), in one transaction. Refused unless the retention window has ended;
    a namespace that cannot be deleted leaves everything as it was. Rows deleted, by model.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            record = (
                CleanupRecord.objects.select_for_update(skip_locked=True)
                .filter(
                    customer=customer,
                    status=CleanupRecord.Status.SCHEDULED,
                    scheduled_for__lte=now,
                )
                .first()
            )
            if record is None:
                raise ApplicationError(
                    f"{customer.customer_id} has no deletion due: it is not deactivated, its "
                    "retention window has not ended, or a sweep is deleting it right now.",
                    error="No deletion due",
                    status_code=HTTPStatus.CONFLICT,
                )
            # The sweep's own step for one claimed record (lifecycle.deletion has no public
            # one-customer entry point yet), so both delete exactly the same way.
            deletion._delete_customer(record=record, now=now, actor=actor)
    except DeploymentError as exc:
        raise ApplicationError(
            f"The instance of {customer.customer_id} could not be deleted ({exc}); nothing was "
            "deleted, the daily sweep tries again.",
            error="Deletion failed",
            status_code=HTTPStatus.BAD_GATEWAY,
        ) from exc
    deleted = DeletedCustomer.objects.filter(
        customer_id_hash=deletion.customer_id_hash(customer.customer_id)
    ).first()
    return dict(deleted.rows_deleted) if deleted else {}
