"""Celery tasks of the usage app. Each loads fresh state and calls a service."""

from __future__ import annotations

import logging
import time
import uuid

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache

from core.plans import ENTITLED_STATUSES
from customers.models import Customer
from subscriptions import stripe_api
from usage import partitions, services

logger = logging.getLogger(__name__)

PUSH_LOCK = "usage:billing-push:lock"
PUSH_SOFT_TIME_LIMIT = 540
PUSH_TIME_LIMIT = 600
# Stop starting new customers this long after the start, well inside the soft limit.
PUSH_BUDGET_SECONDS = 480


@shared_task(name="usage.usage_rollup_task", ignore_result=True, acks_late=True)
def usage_rollup_task() -> int:
    """Roll raw reports older than USAGE_RAW_RETENTION_DAYS into daily aggregates.

    Safe to run twice or concurrently: each day is rolled under a row lock on the cursor.
    """
    days = services.usage_rollup()
    if days:
        logger.info("Usage roll-up: %d day(s) rolled up", days)
    return days


@shared_task(name="usage.usage_partitions_maintain_task", ignore_result=True, acks_late=True)
def usage_partitions_maintain_task() -> dict:
    """Create usage report partitions ahead and drop the months that are rolled up
    (PostgreSQL; nothing elsewhere). Safe to run twice: each step checks what exists."""
    return partitions.usage_partitions_maintain()


@shared_task(
    name="usage.usage_billing_push_task",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=PUSH_SOFT_TIME_LIMIT,
    time_limit=PUSH_TIME_LIMIT,
)
def usage_billing_push_task() -> dict:
    """Push every paying customer's unbilled overage to Stripe's Billing Meters, once.

    One run at a time (a cache lock; a second run finds it taken and returns), so the calls
    of all customers share one pace of STRIPE_METER_RATE_PER_SECOND. Safe to run twice and
    to kill at any point: see `services.usage_billing_push_customer`. A run that stops early
    (Stripe unavailable, rate limited, out of time) leaves the rest to the next run.
    """
    if not stripe_api.is_configured():
        return {"skipped": "stripe not configured"}
    token = uuid.uuid4().hex
    if not cache.add(PUSH_LOCK, token, timeout=PUSH_TIME_LIMIT):
        return {"skipped": "another push is running"}
    stats, customers, started = services.PushStats(), 0, time.monotonic()
    try:
        pacer = services.StripePacer(settings.STRIPE_METER_RATE_PER_SECOND)
        pks = list(
            Customer.objects.filter(
                subscription__status__in=ENTITLED_STATUSES,
                subscription__current_period_start__isnull=False,
                subscription__current_period_end__isnull=False,
            )
            .exclude(subscription__stripe_subscription_id="")
            .exclude(stripe_customer_id="")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for pk in pks:
            if time.monotonic() - started > PUSH_BUDGET_SECONDS:
                logger.warning("Usage push: out of time after %d customer(s)", customers)
                break
            customer = Customer.objects.select_related("subscription").filter(pk=pk).first()
            if customer is None:  # deleted since the list was read
                continue
            try:
                stats.add(services.usage_billing_push_customer(customer=customer, pacer=pacer))
            except services.PushStopped as exc:
                logger.warning("Usage push stopped at %s: %s", customer.customer_id, exc)
                break
            customers += 1
    except SoftTimeLimitExceeded:
        logger.warning("Usage push: soft time limit after %d customer(s)", customers)
    finally:
        if cache.get(PUSH_LOCK) == token:
            cache.delete(PUSH_LOCK)
    result = {"customers": customers, **vars(stats)}
    if stats.sent or stats.duplicates or stats.failed:
        logger.info("Usage push: %s", result)
    return result
