"""Celery tasks of the usage app. Each loads fresh state and calls a service."""

from __future__ import annotations

import logging

from celery import shared_task

from usage import services

logger = logging.getLogger(__name__)


@shared_task(name="usage.usage_rollup_task", ignore_result=True, acks_late=True)
def usage_rollup_task() -> int:
    """Roll raw reports older than USAGE_RAW_RETENTION_DAYS into daily aggregates.

    Safe to run twice or concurrently: each day is rolled under a row lock on the cursor.
    """
    days = services.usage_rollup()
    if days:
        logger.info("Usage roll-up: %d day(s) rolled up", days)
    return days
