"""Customer emails, enqueued once the change they describe is committed."""

from __future__ import annotations

import logging

from django.db import transaction

from customers.models import Customer
from lifecycle.tasks import customer_email_task

logger = logging.getLogger(__name__)


def customer_email_enqueue(customer: Customer, template: str, **context) -> None:
    try:
        customer_email_task.delay(customer.pk, template, context)
    except Exception:  # the broker being down must not undo a committed change
        logger.warning("Could not enqueue %s email for %s", template, customer.customer_id)


def customer_email_on_commit(customer: Customer, template: str, **context) -> None:
    """Enqueue the email after the caller's transaction commits (at once outside one)."""
    transaction.on_commit(lambda: customer_email_enqueue(customer, template, **context))
