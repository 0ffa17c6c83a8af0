"""Celery tasks of the lifecycle workflows. Each takes ids, loads fresh state, calls a service.

The task names are the wire contract (queued messages and django-celery-beat rows carry
them); they are kept from when these tasks lived in the customers app.
"""

from __future__ import annotations

from celery import shared_task

from customers.models import Customer
from lifecycle.deletion import cleanup_execute_due
from lifecycle.emails import customer_email_send
from lifecycle.entitlements import license_refresh
from subscriptions.services import subscription_trials_end_due


@shared_task(
    name="customers.customer_email_task",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def customer_email_task(customer_pk: int, template: str, context: dict) -> None:
    """Send one customer email after the change it describes is committed."""
    customer = Customer.objects.select_related("subscription").filter(pk=customer_pk).first()
    if customer is not None:
        customer_email_send(customer=customer, template=template, extra=context)


@shared_task(name="customers.cleanup_execute_due_task", ignore_result=True)
def cleanup_execute_due_task() -> int:
    """The daily deletion sweep: customers whose retention window has ended."""
    return cleanup_execute_due(actor="task:cleanup_execute_due_task")


@shared_task(name="lifecycle.trial_end_due_task", ignore_result=True)
def trial_end_due_task() -> int:
    """Trials canceled at period end whose end has come (beat, every 5 minutes): they end
    without converting, and the license falls back as for any canceled customer."""
    ended = subscription_trials_end_due()
    for customer in ended:
        license_refresh(customer=customer, reason="trial ended")
    return len(ended)
