"""Customer emails: the guide's communication templates, rendered as text and HTML.

Sent by lifecycle.tasks.customer_email_task; lifecycle.notifications enqueues them.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from customers.models import Customer
from lifecycle import links
from subscriptions.models import Refund

SUBJECTS = {
    "graceful_cancellation": "Your subscription will end on {end_date}",
    "immediate_cancellation": "Your subscription has been canceled",
    "deactivation": "Your Iotistic account has been deactivated",
    "reactivation": "Your Iotistic account is active again",
}


def email_context(customer: Customer, extra: dict) -> dict:
    subscription = getattr(customer, "subscription", None)
    trialing = subscription is not None and subscription.status == "trialing"
    end = None
    if subscription is not None:
        end = subscription.trial_ends_at if trialing else subscription.current_period_end
    refund = None
    if refund_id := extra.get("refund"):
        refund = Refund.objects.filter(pk=refund_id, customer=customer).first()
    if refund is None and (deactivation_id := extra.get("deactivation")):
        deactivation = customer.deactivations.filter(pk=deactivation_id).first()
        refund = deactivation.refund if deactivation else None
    return {
        "name": customer.full_name or customer.company_name or customer.email,
        "customer_id": customer.customer_id,
        "end_date": f"{end:%B %d, %Y}" if end else "the end of your billing period",
        "refund": refund,
        "refund_amount": f"{Decimal(refund.amount) / 100:.2f}" if refund else "",
        "retention_days": extra.get("retention_days", 30),
        "scheduled_deletion": f"{customer.scheduled_deletion:%B %d, %Y}"
        if customer.scheduled_deletion
        else "",
        # Signed single-purpose links to this service's own pages (lifecycle.links); an
        # active customer whose subscription ended "reactivates" by choosing a plan.
        "keep_url": links.link_url(customer=customer, purpose=links.KEEP),
        "reactivate_url": links.link_url(
            customer=customer,
            purpose=links.SUBSCRIBE if customer.is_active else links.REACTIVATE,
        ),
        "subscribe_url": links.link_url(customer=customer, purpose=links.SUBSCRIBE),
    }


def customer_email_send(*, customer: Customer, template: str, extra: dict | None = None) -> None:
    context = email_context(customer, extra or {})
    subject = SUBJECTS[template].format(**context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"emails/{template}.txt", context),
        to=[customer.email],
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    message.send()
