"""Celery tasks of the subscriptions app. Each takes ids, loads fresh state, calls a service."""

from __future__ import annotations

import logging

from celery import shared_task

from customers.models import Customer
from subscriptions import mirror, refunds, services, stripe_api

logger = logging.getLogger(__name__)


@shared_task(name="subscriptions.customer_stripe_sync_task", ignore_result=True)
def customer_stripe_sync_task(customer_pk: int) -> None:
    """Create the Stripe customer after signup. A failure is recorded on the customer and
    retried by the sweep below, so a slow or absent Stripe never blocks a signup."""
    customer = Customer.objects.filter(pk=customer_pk, stripe_customer_id="").first()
    if customer is None or not stripe_api.is_configured():
        return
    try:
        services.customer_stripe_ensure(customer=customer)
    except stripe_api.StripeError as exc:
        logger.warning("Stripe customer for %s not created yet: %s", customer.customer_id, exc)


@shared_task(name="subscriptions.stripe_customer_sync_sweep_task", ignore_result=True)
def stripe_customer_sync_sweep_task(limit: int = 200) -> int:
    if not stripe_api.is_configured():
        return 0
    pending = Customer.objects.filter(stripe_customer_id="", is_active=True).values_list(
        "pk", flat=True
    )[:limit]
    for customer_pk in pending:
        customer_stripe_sync_task(customer_pk)
    return len(pending)


@shared_task(name="subscriptions.refund_reconcile_task", ignore_result=True)
def refund_reconcile_task() -> int:
    """Complete refunds left pending by a crash or a Stripe outage (same idempotency key)."""
    if not stripe_api.is_configured():
        return 0
    return refunds.refund_reconcile()


@shared_task(
    name="subscriptions.stripe_mirror_event_task",
    ignore_result=True,
    soft_time_limit=120,
    time_limit=150,
)
def stripe_mirror_event_task(event_pk: int) -> None:
    """Copy what one processed Stripe event names into dj-stripe's tables for staff. Enqueued
    after our handler committed; failures are logged and recorded by the mirror, never raised."""
    mirror.stripe_event_mirror(event_id=event_pk)


@shared_task(
    name="subscriptions.stripe_mirror_backfill_task",
    ignore_result=True,
    soft_time_limit=1800,
    time_limit=1900,
)
def stripe_mirror_backfill_task() -> None:
    """Fill the whole mirror from Stripe (djstripe_sync_models, then invoices' payments)."""
    mirror.stripe_mirror_backfill()
