"""Permanent deletion after the retention window: the daily sweep, the purge of a customer's
rows in every app, and the anonymised record that remains."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from http import HTTPStatus

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import ApplicationError
from core.timestamps import iso
from customers.models import CleanupRecord, Customer, DeletedCustomer
from deployments.kubernetes import DeploymentError
from deployments.services import deployment_delete_now
from subscriptions.models import StripeEvent
from subscriptions.services import subscription_cancel_now

logger = logging.getLogger(__name__)


def customer_id_hash(customer_id: str) -> str:
    return hashlib.sha256(f"{settings.SECRET_KEY}|{customer_id}".encode()).hexdigest()


def data_deleted_error(customer_id: str) -> ApplicationError:
    return ApplicationError(
        f"Data has been deleted: the retention period of {customer_id} has ended and its data "
        "is permanently deleted. It cannot be reactivated; sign up again.",
        error="Data has been deleted",
        status_code=HTTPStatus.GONE,
    )


def cleanup_execute_due(
    *, now: datetime | None = None, actor: str = "task:execute_deletions"
) -> int:
    """Delete every customer whose retention window has ended; safe to run concurrently.

    Each due record is claimed with SELECT ... FOR UPDATE SKIP LOCKED and processed in one
    transaction: a concurrent run skips it, and a run that dies mid-way rolls back and the
    next run does it again (namespace deletion is idempotent).
    """
    now = now or timezone.now()
    done = 0
    failed: list[int] = []
    while True:
        claimed: CleanupRecord | None = None
        try:
            with transaction.atomic():
                claimed = (
                    CleanupRecord.objects.select_for_update(skip_locked=True)
                    .filter(status=CleanupRecord.Status.SCHEDULED, scheduled_for__lte=now)
                    .exclude(pk__in=failed)
                    .order_by("scheduled_for", "pk")
                    .first()
                )
                if claimed is None:
                    return done
                _delete_customer(record=claimed, now=now, actor=actor)
                done += 1
        except (DeploymentError, ApplicationError) as exc:
            if claimed is None:
                raise
            # The namespace (or the Stripe subscription) could not be removed: nothing was
            # purged, the transaction rolled back, and the next run retries this record.
            logger.warning("Deletion of %s postponed: %s", claimed.namespace, exc)
            failed.append(claimed.pk)


def _delete_customer(*, record: CleanupRecord, now: datetime, actor: str) -> None:
    customer = (
        Customer.objects.select_related("subscription").filter(pk=record.customer_id).first()
        if record.customer_id is not None
        else None
    )
    deployment_delete_now(namespace=record.namespace)
    if customer is None:  # the customer row was removed by other means: only the namespace left
        CleanupRecord.objects.filter(pk=record.pk).update(
            status=CleanupRecord.Status.EXECUTED, executed_at=now
        )
        return
    subscription = getattr(customer, "subscription", None)
    if subscription and subscription.stripe_subscription_id and subscription.status != "canceled":
        # Purging the rows must not leave Stripe charging a customer we no longer know. The
        # license goes with the rows, so there is nothing to revoke or re-sign.
        subscription_cancel_now(customer=customer)
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
