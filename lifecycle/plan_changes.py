"""Plan changes and cancellations asked for through the API or the admin: the Stripe change,
what follows from it (lifecycle.entitlements), the audit row and the customer's email."""

from __future__ import annotations

from dataclasses import dataclass

from core.audit import audit_record
from customers.models import Customer
from lifecycle import entitlements
from lifecycle.notifications import customer_email_on_commit
from subscriptions import refunds
from subscriptions import services as subscription_services
from subscriptions.models import Refund, Subscription


def subscription_change_plan(*, customer: Customer, new_plan: str, actor: str) -> Subscription:
    """Change to another paid plan now, with Stripe's proration; the license is re-signed and
    the instance redeployed once the change is applied."""
    change = subscription_services.subscription_upgrade(customer=customer, new_plan=new_plan)
    subscription = entitlements.entitlement_follow(customer=customer, change=change)
    audit_record(
        action="subscription.plan_changed", customer=customer, actor=actor, plan=subscription.plan
    )
    return subscription


def subscription_cancel_at_period_end(
    *, customer: Customer, cancel: bool, actor: str
) -> Subscription:
    """Graceful cancel (True) or keep (False); a graceful cancel is confirmed by email."""
    change = subscription_services.subscription_cancel_at_period_end(
        customer=customer, cancel=cancel
    )
    subscription = entitlements.entitlement_follow(customer=customer, change=change)
    audit_record(
        action="subscription.cancel_at_period_end", customer=customer, actor=actor, cancel=cancel
    )
    if cancel:
        customer_email_on_commit(customer, "graceful_cancellation")
    return subscription


@dataclass(frozen=True)
class RefundOnCancel:
    """A refund to issue with an immediate cancellation: `amount` cents, or pro-rated."""

    reason: str
    amount: int | None = None
    idempotency_key: str = ""


@dataclass(frozen=True)
class Cancellation:
    subscription: Subscription
    refund: Refund | None


def subscription_cancel_immediately(
    *, customer: Customer, actor: str, refund: RefundOnCancel | None = None
) -> Cancellation:
    """Cancel now (access ends now), optionally with a refund, then email the customer.

    A refund that cannot be issued is refused before anything is canceled.
    """
    if refund is not None:
        refunds.refund_check(customer=customer, amount=refund.amount)
    subscription = entitlements.subscription_cancel_now(customer=customer)
    issued = None
    if refund is not None:
        issued = refunds.refund_request(
            customer=customer,
            reason=refund.reason,
            amount=refund.amount,
            use_prorated=refund.amount is None,
            description="Refund on immediate cancellation",
            client_key=refund.idempotency_key,
            actor=actor,
        ).refund
    refund_pk = issued.pk if issued else None
    audit_record(action="subscription.canceled", customer=customer, actor=actor, refund=refund_pk)
    customer_email_on_commit(customer, "immediate_cancellation", refund=refund_pk)
    return Cancellation(subscription=subscription, refund=issued)
