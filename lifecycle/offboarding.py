"""Offboarding: deactivation, and reactivation within the retention window.

Deactivation is a sequence of steps, each stamped on its `Deactivation` row when done:
cancel the subscription, refund, soft-delete, revoke the license, schedule the deletion.
Running it again after a failure completes the missing steps and repeats none; runs of one
deactivation at the same time do each step once (the subscription step and the finish lock
the `Deactivation` row, the refund is found by its key), and only the run that completes it
writes the audit row and enqueues the email. Permanent deletion after the retention window
is lifecycle.deletion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import ApplicationError
from core.timestamps import iso
from customers.models import CleanupRecord, Customer, Deactivation, DeletedCustomer
from licensing.models import LicenseRevocation
from licensing.services import REVOKED_BY_DEACTIVATION, license_restore, license_revoke
from lifecycle import entitlements
from lifecycle.deletion import customer_id_hash, data_deleted_error
from lifecycle.notifications import customer_email_on_commit
from subscriptions import refunds
from subscriptions import services as subscription_services
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)
# A deactivation's refund is looked up by its key for as long as the row lives.
_REFUND_KEY_WINDOW = timedelta(days=3650)
_UNREFUNDABLE = ("Nothing to refund", "Invalid refund amount", "No payment found")


@dataclass(frozen=True)
class DeactivationOptions:
    cancel_subscription: bool = True
    issue_refund: bool = False
    refund_reason: str = "requested_by_customer"
    refund_amount: int | None = None
    delete_data: bool = True
    retention_days: int = 30
    cancel_at_period_end: bool = False


_SKIPPED = "Refund skipped: "


def _refund_state(deactivation: Deactivation) -> tuple[bool, int, str | None]:
    """(issued, amount, why not): the refund of a deactivation, which may span payments."""
    options = DeactivationOptions(**deactivation.options)
    rows = refunds.refund_group(deactivation.refund)
    amount = sum(r.amount for r in rows if r.status not in ("failed", "canceled"))
    if not options.issue_refund:
        return False, 0, None
    if rows:
        issued, reason = refunds.refund_outcome(rows)
        return issued, amount, reason
    if deactivation.last_error.startswith(_SKIPPED):
        return False, 0, deactivation.last_error.removeprefix(_SKIPPED)
    if deactivation.refund_done_at is None:
        return False, 0, "The refund step has not run yet: the deactivation is not complete."
    return False, 0, "No refund was made."


def deactivation_result(deactivation: Deactivation) -> dict:
    """The guide's `result` object; `refundReason` says why a requested refund is not issued."""
    customer = deactivation.customer
    issued, amount, reason = _refund_state(deactivation)
    return {
        "customerId": customer.customer_id,
        "subscriptionCanceled": deactivation.subscription_canceled,
        "refundIssued": issued,
        "refundAmount": amount,
        "refundReason": reason,
        "dataScheduledForDeletion": customer.scheduled_deletion is not None,
        "scheduledDeletionDate": iso(customer.scheduled_deletion),
        "licenseRevoked": deactivation.license_revoked_at is not None,
    }


def _current_deactivation(customer: Customer, options: DeactivationOptions, actor: str):
    with transaction.atomic():
        # Decide on the locked row, not on `customer` as the request read it before the lock:
        # a run that finished meanwhile has made it inactive, and a second deactivation would
        # refund again under its own key.
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        existing = locked.deactivations.first()
        if existing and (
            existing.status == Deactivation.Status.IN_PROGRESS or not locked.is_active
        ):
            return existing
        return Deactivation.objects.create(
            customer=customer, options=options.__dict__, requested_by=actor
        )


def customer_deactivate(
    *, customer: Customer, options: DeactivationOptions, actor: str
) -> Deactivation:
    """Run (or resume) the deactivation of `customer`. Raises ApplicationError if a step
    fails; everything done before it stays done and is not repeated on the next run."""
    deactivation = _current_deactivation(customer, options, actor)
    if deactivation.status == Deactivation.Status.COMPLETED:
        return deactivation
    options = DeactivationOptions(**deactivation.options)  # a resumed run keeps its first options
    now = timezone.now

    try:
        _cancel_step(deactivation=deactivation, customer=customer, options=options)
        deactivation.refresh_from_db()

        if deactivation.refund_done_at is None:
            if options.issue_refund:
                try:
                    result = refunds.refund_request(
                        customer=customer,
                        reason=options.refund_reason,
                        amount=options.refund_amount,
                        use_prorated=options.refund_amount is None,
                        description="Refund on deactivation",
                        client_key=f"deactivation:{deactivation.pk}",
                        dedup_window=_REFUND_KEY_WINDOW,
                        actor=actor,
                    )
                except ApplicationError as exc:
                    # Nothing (more) is refundable: a re-run would hit the same answer, so the
                    # step is done without a refund and the deactivation goes on.
                    if exc.error not in _UNREFUNDABLE:
                        raise
                    Deactivation.objects.filter(pk=deactivation.pk).update(
                        last_error=f"{_SKIPPED}{exc.message}"[:2000]
                    )
                else:
                    # A re-run finds the first run's rows: the parts Stripe did not get yet
                    # are sent now, with their keys.
                    rows = refunds.refund_submit_all(refunds=list(result.refunds))
                    Deactivation.objects.filter(pk=deactivation.pk).update(refund=rows[0])
            Deactivation.objects.filter(pk=deactivation.pk, refund_done_at=None).update(
                refund_done_at=now()
            )
            deactivation.refresh_from_db()

        _finish(deactivation=deactivation, customer=customer, options=options, actor=actor)
    except ApplicationError as exc:
        Deactivation.objects.filter(pk=deactivation.pk).update(last_error=exc.message[:2000])
        audit_record(
            action="customer.deactivation_failed",
            customer=customer,
            actor=actor,
            error=exc.message,
            deactivation=deactivation.pk,
        )
        raise
    deactivation.refresh_from_db()
    return deactivation


@transaction.atomic
def _cancel_step(
    *, deactivation: Deactivation, customer: Customer, options: DeactivationOptions
) -> None:
    """Cancel the subscription (at once, or at period end) unless a run did; the row is locked
    meanwhile, so a concurrent run waits and finds the step done (and what it canceled)."""
    deactivation = Deactivation.objects.select_for_update().get(pk=deactivation.pk)
    if deactivation.subscription_done_at is not None:
        return
    canceled = False
    subscription = Subscription.objects.get(customer=customer)
    if options.cancel_subscription and subscription.status != Subscription.Status.CANCELED:
        if subscription.stripe_subscription_id:
            if options.cancel_at_period_end:
                change = subscription_services.subscription_cancel_at_period_end(
                    customer=customer, cancel=True
                )
            else:
                # Canceled without the cancellation's own revocation: the finish revokes,
                # naming the deactivation as the reason.
                change = subscription_services.subscription_cancel_now(customer=customer)
            entitlements.entitlement_follow(customer=customer, change=change)
        else:
            Subscription.objects.filter(pk=subscription.pk).exclude(
                status=Subscription.Status.CANCELED
            ).update(
                status=Subscription.Status.CANCELED,
                canceled_at=timezone.now(),
                updated_at=timezone.now(),
            )
        canceled = True
    deactivation.subscription_done_at = timezone.now()
    deactivation.subscription_canceled = canceled
    deactivation.save(update_fields=["subscription_done_at", "subscription_canceled"])


@transaction.atomic
def _finish(
    *, deactivation: Deactivation, customer: Customer, options: DeactivationOptions, actor: str
) -> None:
    """The last steps, the audit row and the email, by the one run that completes it."""
    deactivation = Deactivation.objects.select_for_update().get(pk=deactivation.pk)
    if deactivation.status == Deactivation.Status.COMPLETED:
        return  # a concurrent run completed it (and told it)
    now = timezone.now()
    if deactivation.soft_deleted_at is None:
        Customer.objects.filter(pk=customer.pk).update(
            is_active=False,
            updated_at=now,
            deleted_at=now,
            scheduled_deletion=now + timedelta(days=options.retention_days)
            if options.delete_data
            else None,
        )
        deactivation.soft_deleted_at = now
    if deactivation.license_revoked_at is None:
        license_revoke(
            customer=customer, reason="Customer deactivated", actor=REVOKED_BY_DEACTIVATION
        )
        deactivation.license_revoked_at = now
    if deactivation.deletion_scheduled_at is None:
        if options.delete_data:
            customer.refresh_from_db()
            CleanupRecord.objects.get_or_create(
                customer=customer,
                status=CleanupRecord.Status.SCHEDULED,
                defaults={
                    "namespace": customer.namespace,
                    "scheduled_for": customer.scheduled_deletion,
                },
            )
        deactivation.deletion_scheduled_at = now
    deactivation.status = Deactivation.Status.COMPLETED
    deactivation.completed_at = now
    if not deactivation.last_error.startswith(_SKIPPED):
        deactivation.last_error = ""
    deactivation.save()
    audit_record(
        action="customer.deactivated",
        customer=customer,
        actor=actor,
        deactivation=deactivation.pk,
        options=deactivation.options,
    )
    customer_email_on_commit(customer, "deactivation", deactivation=deactivation.pk)


@transaction.atomic
def customer_reactivate(*, customer_id: str, actor: str) -> Customer:
    """Undo a deactivation inside the retention window; the subscription is not restored."""
    customer = Customer.objects.select_for_update().filter(customer_id=customer_id).first()
    if customer is None:
        if DeletedCustomer.objects.filter(customer_id_hash=customer_id_hash(customer_id)).exists():
            raise data_deleted_error(customer_id)
        raise ApplicationError(
            f"Customer {customer_id} not found.",
            error="Not found",
            status_code=HTTPStatus.NOT_FOUND,
        )
    if customer.is_active:
        raise ApplicationError(
            f"{customer_id} is active; nothing to reactivate.",
            error="Not deactivated",
            status_code=HTTPStatus.CONFLICT,
        )
    now = timezone.now()
    if customer.scheduled_deletion and customer.scheduled_deletion <= now:
        raise data_deleted_error(customer_id)
    Customer.objects.filter(pk=customer.pk).update(
        is_active=True, deleted_at=None, scheduled_deletion=None, updated_at=now
    )
    CleanupRecord.objects.filter(customer=customer, status=CleanupRecord.Status.SCHEDULED).update(
        status=CleanupRecord.Status.CANCELED, canceled_at=now
    )
    if LicenseRevocation.objects.filter(
        customer=customer, revoked_by=REVOKED_BY_DEACTIVATION
    ).exists():
        license_restore(customer=customer, actor=actor)
    audit_record(action="customer.reactivated", customer=customer, actor=actor)
    customer_email_on_commit(customer, "reactivation")
    customer.refresh_from_db()
    return customer
