"""Plan changes and cancellations asked for through the API or the admin: the Stripe change,
what follows from it (lifecycle.entitlements), the audit row and the customer's email.

The audit row and the email belong to a change that happened: they are written by the call
whose change it made (`SubscriptionChange.changed`), in the change's transaction with the
email enqueued on commit. A repeat, or a concurrent duplicate that found the change made,
answers the same and writes neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from core.audit import audit_record
from core.errors import ApplicationError
from customers.models import AuditLog, Customer
from lifecycle import entitlements
from lifecycle.notifications import customer_email_on_commit
from subscriptions import refunds
from subscriptions import services as subscription_services
from subscriptions.models import Refund, Subscription
from subscriptions.services import SubscriptionChange


def subscription_change_plan(*, customer: Customer, new_plan: str, actor: str) -> Subscription:
    """Change to another paid plan now, with Stripe's proration; the license is re-signed and
    the instance redeployed once the change is applied."""
    with transaction.atomic():
        change = subscription_services.subscription_upgrade(customer=customer, new_plan=new_plan)
        subscription = entitlements.entitlement_follow(customer=customer, change=change)
        if change.changed:
            audit_record(
                action="subscription.plan_changed",
                customer=customer,
                actor=actor,
                plan=subscription.plan,
            )
    return subscription


def subscription_apply_from_stripe(
    *, customer: Customer, stripe_sub: dict, actor: str, event_at: datetime | None = None
) -> SubscriptionChange:
    """What a webhook reports Stripe did, applied here (lifecycle.entitlements follows it). A
    cancellation that reaches us this way (made in Stripe's dashboard, by Stripe after failed
    payments, or asked for through our API whose answer was lost) is told by email as ours
    are: whichever path applies it to the row tells it, once. A subscription that ends at the
    period end it was canceled for was told when that was scheduled."""
    with transaction.atomic():
        change = entitlements.subscription_sync_from_stripe(
            customer=customer, stripe_sub=stripe_sub, event_at=event_at
        )
        if change.cancel_scheduled:
            customer_email_on_commit(customer, "graceful_cancellation")
        stripe_id = change.subscription.stripe_subscription_id
        if change.ended_unscheduled and not _cancellation_told(customer, stripe_id):
            _canceled(customer=customer, stripe_id=stripe_id, actor=actor, rows=[])
    return change


def subscription_cancel_at_period_end(
    *, customer: Customer, cancel: bool, actor: str
) -> Subscription:
    """Graceful cancel (True) or keep (False); a graceful cancel is confirmed by email. Asking
    for what is already so answers the same, unaudited and untold."""
    with transaction.atomic():
        change = subscription_services.subscription_cancel_at_period_end(
            customer=customer, cancel=cancel
        )
        subscription = entitlements.entitlement_follow(customer=customer, change=change)
        if change.changed:
            audit_record(
                action="subscription.cancel_at_period_end",
                customer=customer,
                actor=actor,
                cancel=cancel,
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
    """A cancellation, its refund (the Stripe refunds of it, one per payment) and, when a
    refund was asked for but is not issued, why."""

    subscription: Subscription
    refunds: list[Refund] = field(default_factory=list)
    refund_issued: bool = False
    refund_reason: str | None = None

    @property
    def refund(self) -> Refund | None:
        return self.refunds[0] if self.refunds else None


def subscription_cancel_immediately(
    *, customer: Customer, actor: str, refund: RefundOnCancel | None = None
) -> Cancellation:
    """Cancel now (access ends now), optionally with a refund, then email the customer.

    A refund that cannot be issued is refused before anything is canceled. One that Stripe
    then does not complete (unavailable, refused, or nothing unused pro rata) leaves the
    cancellation done and says why.

    Only the call that canceled audits and emails. Without a refund that is one transaction
    (the cancel, the revocation, the audit row, the email on commit). A refund is made after
    the cancel commits (its row is committed before Stripe is called), and the cancellation
    is audited and told once its refund is known, once per Stripe subscription: a retry
    after a call that died in between tells it. A repeat on a canceled subscription that
    makes a new refund audits that refund (`refund.issued`), as the refund endpoint does.
    """
    if refund is None:
        with transaction.atomic():
            change = entitlements.subscription_cancel_now(customer=customer)
            if change.changed:
                stripe_id = change.subscription.stripe_subscription_id
                _canceled(customer=customer, stripe_id=stripe_id, actor=actor, rows=[])
        return Cancellation(subscription=change.subscription)
    refunds.refund_check(customer=customer, amount=refund.amount)
    change = entitlements.subscription_cancel_now(customer=customer)
    rows: list[Refund] = []
    issued, reason, made = False, None, False
    try:
        result = refunds.refund_request(
            customer=customer,
            reason=refund.reason,
            amount=refund.amount,
            use_prorated=refund.amount is None,
            description="Refund on immediate cancellation",
            client_key=refund.idempotency_key,
            actor=actor,
        )
    except ApplicationError as exc:
        reason = exc.message
        row_id = (exc.details or {}).get("refund_id")
        pending = Refund.objects.filter(pk=row_id).first() if row_id else None
        rows = refunds.refund_group(pending)
    else:
        rows, made = list(result.refunds), not result.duplicate
        issued, reason = refunds.refund_outcome(rows)
    with transaction.atomic():
        # Told once per Stripe subscription, by whichever call gets here first: the one that
        # canceled, or a retry of it when that one died between the cancel's commit and here
        # (the retry finds the cancel made, `changed` false, and nothing told yet).
        subscription = subscription_services.subscription_lock(customer=customer)
        stripe_id = subscription.stripe_subscription_id
        if not _cancellation_told(customer, stripe_id):
            _canceled(
                customer=customer,
                stripe_id=stripe_id,
                actor=actor,
                rows=rows,
                issued=issued,
                reason=reason,
            )
        elif made:
            audit_record(
                action="refund.issued",
                customer=customer,
                actor=actor,
                refund=rows[0].pk,
                refunds=[r.pk for r in rows],
                amount=sum(r.amount for r in rows),
                rule=rows[0].rule,
                refund_issued=issued,
                refund_reason=reason,
            )
    return Cancellation(
        subscription=change.subscription, refunds=rows, refund_issued=issued, refund_reason=reason
    )


def _cancellation_told(customer: Customer, stripe_subscription_id: str) -> bool:
    return AuditLog.objects.filter(
        customer=customer,
        action="subscription.canceled",
        metadata__stripe_subscription=stripe_subscription_id,
    ).exists()


def _canceled(
    *,
    customer: Customer,
    stripe_id: str,
    actor: str,
    rows: list[Refund],
    issued: bool = False,
    reason: str | None = None,
) -> None:
    """The audit row (naming the Stripe subscription: `_cancellation_told` finds it) and the
    email of a cancellation of `stripe_id`."""
    refund_pk = rows[0].pk if rows else None
    audit_record(
        action="subscription.canceled",
        customer=customer,
        actor=actor,
        stripe_subscription=stripe_id,
        refund=refund_pk,
        refunds=[r.pk for r in rows],
        refund_issued=issued,
        refund_reason=reason,
    )
    customer_email_on_commit(customer, "immediate_cancellation", refund=refund_pk)
