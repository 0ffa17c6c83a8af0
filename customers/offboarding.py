"""Offboarding: deactivation, reactivation within the retention window, permanent deletion.

Deactivation is a sequence of steps, each stamped on its `Deactivation` row when done:
cancel the subscription, refund, soft-delete, revoke the license, schedule the deletion.
Running it again after a failure completes the missing steps and repeats none.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from config.api import ApplicationError, iso
from customers.audit import audit_record
from customers.models import CleanupRecord, Customer, Deactivation, DeletedCustomer

logger = logging.getLogger(__name__)
DEACTIVATED_BY = "deactivation"
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


def deactivation_result(deactivation: Deactivation) -> dict:
    """The guide's `result` object."""
    customer = deactivation.customer
    refund = deactivation.refund
    return {
        "customerId": customer.customer_id,
        "subscriptionCanceled": deactivation.subscription_canceled,
        "refundIssued": bool(refund and refund.status == "succeeded"),
        "refundAmount": refund.amount if refund else 0,
        "dataScheduledForDeletion": customer.scheduled_deletion is not None,
        "scheduledDeletionDate": iso(customer.scheduled_deletion),
        "licenseRevoked": deactivation.license_revoked_at is not None,
    }


def _current_deactivation(customer: Customer, options: DeactivationOptions, actor: str):
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=customer.pk)
        existing = customer.deactivations.first()
        if existing and (
            existing.status == Deactivation.Status.IN_PROGRESS or not customer.is_active
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
    from subscriptions import refunds, services
    from subscriptions.models import Refund

    deactivation = _current_deactivation(customer, options, actor)
    if deactivation.status == Deactivation.Status.COMPLETED:
        return deactivation
    options = DeactivationOptions(**deactivation.options)  # a resumed run keeps its first options
    now = timezone.now

    try:
        if deactivation.subscription_done_at is None:
            canceled = False
            subscription = customer.subscription
            if options.cancel_subscription and subscription.status != "canceled":
                if subscription.stripe_subscription_id:
                    if options.cancel_at_period_end:
                        services.subscription_cancel_at_period_end(customer=customer, cancel=True)
                    else:
                        services.subscription_cancel_now(customer=customer, actor=actor)
                else:
                    subscription.status = subscription.Status.CANCELED
                    subscription.canceled_at = now()
                    subscription.save(update_fields=["status", "canceled_at", "updated_at"])
                canceled = True
            Deactivation.objects.filter(pk=deactivation.pk).update(
                subscription_done_at=now(), subscription_canceled=canceled
            )
            deactivation.refresh_from_db()

        if deactivation.refund_done_at is None:
            if options.issue_refund and customer.subscription.latest_amount_paid:
                try:
                    refund = refunds.refund_request(
                        customer=customer,
                        reason=options.refund_reason,
                        amount=options.refund_amount,
                        use_prorated=options.refund_amount is None,
                        description="Refund on deactivation",
                        client_key=f"deactivation:{deactivation.pk}",
                        dedup_window=_REFUND_KEY_WINDOW,
                        actor=actor,
                    ).refund
                except ApplicationError as exc:
                    # Nothing (more) is refundable: a re-run would hit the same answer, so the
                    # step is done without a refund and the deactivation goes on.
                    if exc.error not in _UNREFUNDABLE:
                        raise
                    Deactivation.objects.filter(pk=deactivation.pk).update(
                        last_error=f"Refund skipped: {exc.message}"[:2000]
                    )
                else:
                    if refund.status == Refund.Status.PENDING and not refund.stripe_refund_id:
                        refund = refunds.refund_submit(refund=refund)
                    Deactivation.objects.filter(pk=deactivation.pk).update(refund=refund)
            Deactivation.objects.filter(pk=deactivation.pk).update(refund_done_at=now())
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
def _finish(
    *, deactivation: Deactivation, customer: Customer, options: DeactivationOptions, actor: str
) -> None:
    from licensing.services import license_revoke

    deactivation = Deactivation.objects.select_for_update().get(pk=deactivation.pk)
    now = timezone.now()
    if deactivation.soft_deleted_at is None:
        Customer.objects.filter(pk=customer.pk).update(
            is_active=False,
            deleted_at=now,
            scheduled_deletion=now + timedelta(days=options.retention_days)
            if options.delete_data
            else None,
        )
        deactivation.soft_deleted_at = now
    if deactivation.license_revoked_at is None:
        license_revoke(customer=customer, reason="Customer deactivated", actor=DEACTIVATED_BY)
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
    if not deactivation.last_error.startswith("Refund skipped"):
        deactivation.last_error = ""
    deactivation.save()
    audit_record(
        action="customer.deactivated",
        customer=customer,
        actor=actor,
        deactivation=deactivation.pk,
        options=deactivation.options,
    )
    transaction.on_commit(
        lambda: customer_email_enqueue(customer, "deactivation", deactivation=deactivation.pk)
    )


def customer_email_enqueue(customer: Customer, template: str, **context) -> None:
    from customers.tasks import customer_email_task

    try:
        customer_email_task.delay(customer.pk, template, context)
    except Exception:  # the broker being down must not undo a committed offboarding step
        logger.warning("Could not enqueue %s email for %s", template, customer.customer_id)


def customer_id_hash(customer_id: str) -> str:
    return hashlib.sha256(f"{settings.SECRET_KEY}|{customer_id}".encode()).hexdigest()


@transaction.atomic
def customer_reactivate(*, customer_id: str, actor: str) -> Customer:
    """Undo a deactivation inside the retention window; the subscription is not restored."""
    from licensing.models import LicenseRevocation
    from licensing.services import license_restore

    customer = Customer.objects.select_for_update().filter(customer_id=customer_id).first()
    if customer is None:
        if DeletedCustomer.objects.filter(customer_id_hash=customer_id_hash(customer_id)).exists():
            raise _data_deleted(customer_id)
        raise ApplicationError(
            f"Customer {customer_id} not found.",
            error="Not found",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    if customer.is_active:
        raise ApplicationError(
            f"{customer_id} is active; nothing to reactivate.",
            error="Not deactivated",
            status_code=status.HTTP_409_CONFLICT,
        )
    now = timezone.now()
    if customer.scheduled_deletion and customer.scheduled_deletion <= now:
        raise _data_deleted(customer_id)
    Customer.objects.filter(pk=customer.pk).update(
        is_active=True, deleted_at=None, scheduled_deletion=None
    )
    CleanupRecord.objects.filter(customer=customer, status=CleanupRecord.Status.SCHEDULED).update(
        status=CleanupRecord.Status.CANCELED, canceled_at=now
    )
    if LicenseRevocation.objects.filter(customer=customer, revoked_by=DEACTIVATED_BY).exists():
        license_restore(customer=customer, actor=actor)
    audit_record(action="customer.reactivated", customer=customer, actor=actor)
    transaction.on_commit(lambda: customer_email_enqueue(customer, "reactivation"))
    customer.refresh_from_db()
    return customer


def _data_deleted(customer_id: str) -> ApplicationError:
    return ApplicationError(
        f"Data has been deleted: the retention period of {customer_id} has ended and its data "
        "is permanently deleted. It cannot be reactivated; sign up again.",
        error="Data has been deleted",
        status_code=status.HTTP_410_GONE,
    )


def cleanup_execute_due(
    *, now: datetime | None = None, actor: str = "task:execute_deletions"
) -> int:
    """Delete every customer whose retention window has ended; safe to run concurrently.

    Each due record is claimed with SELECT ... FOR UPDATE SKIP LOCKED and processed in one
    transaction: a concurrent run skips it, and a run that dies mid-way rolls back and the
    next run does it again (namespace deletion is idempotent).
    """
    from deployments.kubernetes import DeploymentError

    now = now or timezone.now()
    done = 0
    failed: list[int] = []
    while True:
        try:
            with transaction.atomic():
                record = (
                    CleanupRecord.objects.select_for_update(skip_locked=True)
                    .filter(status=CleanupRecord.Status.SCHEDULED, scheduled_for__lte=now)
                    .exclude(pk__in=failed)
                    .order_by("scheduled_for", "pk")
                    .first()
                )
                if record is None:
                    return done
                _delete_customer(record=record, now=now, actor=actor)
                done += 1
        except (DeploymentError, ApplicationError) as exc:
            # The namespace (or the Stripe subscription) could not be removed: nothing was
            # purged, the transaction rolled back, and the next run retries this record.
            logger.warning("Deletion of %s postponed: %s", record.namespace, exc)
            failed.append(record.pk)


def _delete_customer(*, record: CleanupRecord, now: datetime, actor: str) -> None:
    from deployments.services import deployment_delete_now
    from subscriptions.services import subscription_cancel_now

    customer = Customer.objects.select_related("subscription").filter(pk=record.customer_id).first()
    deployment_delete_now(namespace=record.namespace)
    if customer is None:  # the customer row was removed by other means: only the namespace left
        CleanupRecord.objects.filter(pk=record.pk).update(
            status=CleanupRecord.Status.EXECUTED, executed_at=now
        )
        return
    subscription = getattr(customer, "subscription", None)
    if subscription and subscription.stripe_subscription_id and subscription.status != "canceled":
        # Purging the rows must not leave Stripe charging a customer we no longer know.
        subscription_cancel_now(customer=customer, actor=actor)
    rows = customer_purge(customer=customer)
    DeletedCustomer.objects.get_or_create(
        customer_id_hash=customer_id_hash(customer.customer_id),
        defaults={
            "namespace": record.namespace,
            "plan": getattr(getattr(customer, "subscription", None), "plan", ""),
            "customer_since": customer.created_at.date(),
            "deactivated_at": customer.deleted_at,
            "rows_deleted": rows,
        },
    )
    CleanupRecord.objects.filter(pk=record.pk).update(
        status=CleanupRecord.Status.EXECUTED, executed_at=now, customer=None
    )
    audit_record(
        action="customer.deleted",
        actor=actor,
        namespace=record.namespace,
        rows=rows,
        scheduled_for=iso(record.scheduled_for),
    )


def customer_purge(*, customer: Customer) -> dict[str, int]:
    """Delete the customer's rows in every app, children before parents; counts by model.

    Stripe events about the customer are deleted too: their payloads hold its email.
    """
    from subscriptions.models import StripeEvent

    counts: dict[str, int] = {}
    if customer.stripe_customer_id:
        deleted, _ = StripeEvent.objects.filter(
            payload__data__object__customer=customer.stripe_customer_id
        ).delete()
        counts["subscriptions.StripeEvent"] = deleted
    CleanupRecord.objects.filter(customer=customer).update(customer=None)
    # Every remaining relation is a CASCADE to the customer: Django deletes them in
    # dependency order within this transaction.
    _, by_model = customer.delete()
    for label, count in by_model.items():
        counts[label] = counts.get(label, 0) + count
    return counts


def scheduled_deletions() -> list[dict]:
    rows = Customer.objects.filter(is_active=False, scheduled_deletion__isnull=False).order_by(
        "scheduled_deletion"
    )
    return [
        {
            "customer_id": c.customer_id,
            "email": c.email,
            "company_name": c.company_name,
            "deleted_at": iso(c.deleted_at),
            "scheduled_deletion": iso(c.scheduled_deletion),
        }
        for c in rows
    ]
