"""What follows a change of plan or status: the license is re-signed (and a revocation that
a cancellation made is lifted when the subscription is live again), and the instance is
redeployed with the new license.

Every path that changes a subscription's entitlement comes through here: Stripe's webhooks
(`subscription_sync_from_stripe`), plan changes and cancellations (lifecycle.plan_changes),
offboarding, and a plan granted by staff.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from core.audit import audit_record
from core.errors import ApplicationError
from customers.models import Customer
from deployments.services import deployment_redeploy
from licensing.models import LicenseRevocation
from licensing.services import (
    REVOKED_BY_CANCELLATION,
    IssuedLicense,
    license_get_or_issue,
    license_restore,
    license_revoke,
)
from subscriptions import services as subscription_services
from subscriptions.models import Subscription
from subscriptions.services import SubscriptionChange

logger = logging.getLogger(__name__)

_LIVE_STATUSES = ("active", "trialing", "past_due")


def license_refresh(*, customer: Customer, reason: str) -> None:
    """Re-sign the license after a change of plan or status (logged as upgrade/downgrade).

    A subscription that is live again lifts a revocation that its cancellation made;
    a revocation by staff stays.
    """
    fresh = Customer.objects.select_related("subscription").filter(pk=customer.pk).first()
    if fresh is None:  # deleted meanwhile (the offboarding purge cancels, then deletes)
        return
    customer = fresh
    live = customer.is_active and customer.subscription.status in _LIVE_STATUSES
    if (
        live
        and LicenseRevocation.objects.filter(
            customer=customer, revoked_by=REVOKED_BY_CANCELLATION
        ).exists()
    ):
        license_restore(customer=customer, actor="stripe")
    try:
        license_get_or_issue(customer=customer, reason=reason)
    except ApplicationError:
        logger.info("License of %s not re-issued: revoked", customer.customer_id)
        return
    if live:
        try:
            # The instance gets the new license (IOTISTIC_LICENSE_KEY) with its new limits.
            deployment_redeploy(customer=customer)
        except ApplicationError as exc:
            logger.info("Instance of %s not redeployed: %s", customer.customer_id, exc.message)


def entitlement_follow(*, customer: Customer, change: SubscriptionChange) -> Subscription:
    """After the caller's transaction commits, re-sign and redeploy if the entitlement changed."""
    if change.entitlement_changed:
        transaction.on_commit(lambda: license_refresh(customer=customer, reason="stripe"))
    return change.subscription


def subscription_sync_from_stripe(
    *, customer: Customer, stripe_sub: dict, event_at: datetime | None = None
) -> SubscriptionChange:
    """Make the local subscription say what Stripe says (webhooks), and follow the change."""
    change = subscription_services.subscription_apply_stripe(
        customer=customer, stripe_sub=stripe_sub, event_at=event_at
    )
    entitlement_follow(customer=customer, change=change)
    return change


@transaction.atomic
def subscription_cancel_now(*, customer: Customer) -> SubscriptionChange:
    """Cancel the Stripe subscription at once and revoke the license (access ends now), in
    one transaction. `changed` says whether this call canceled it (see the service for what a
    repeat answers)."""
    change = subscription_services.subscription_cancel_now(customer=customer)
    entitlement_follow(customer=customer, change=change)
    license_revoke(customer=customer, reason="Subscription canceled", actor=REVOKED_BY_CANCELLATION)
    return change


def subscription_grant_plan(
    *, customer: Customer, plan: str, actor: str, period_days: int = 30
) -> tuple[Subscription, IssuedLicense]:
    """Staff put a customer on a plan by hand, without Stripe (no payment): the subscription is
    active for one period, the license is re-signed at once, and the grant is audited."""
    subscription = subscription_services.subscription_set_plan(
        customer=customer, plan=plan, period_days=period_days
    )
    audit_record(
        action="subscription.plan_granted",
        customer=customer,
        actor=actor,
        plan=plan,
        period_days=period_days,
        stripe=False,
    )
    issued = license_get_or_issue(customer=customer, reason="manual plan change")
    return subscription, issued
