"""Celery tasks of the customers app."""

from __future__ import annotations

from celery import shared_task

from customers.models import Customer


@shared_task(
    name="customers.customer_email_task",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def customer_email_task(customer_pk: int, template: str, context: dict) -> None:
    """Send one customer email after the change it describes is committed."""
    from customers.emails import customer_email_send

    customer = Customer.objects.select_related("subscription").filter(pk=customer_pk).first()
    if customer is not None:
        customer_email_send(customer=customer, template=template, extra=context)


@shared_task(name="customers.cleanup_execute_due_task", ignore_result=True)
def cleanup_execute_due_task() -> int:
    """The daily deletion sweep: customers whose retention window has ended."""
    from customers.offboarding import cleanup_execute_due

    return cleanup_execute_due(actor="task:cleanup_execute_due_task")
