"""Writes for the local subscription record."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers.models import Customer
from subscriptions.models import Subscription
from subscriptions.plans import ASSIGNABLE_PLANS, SIGNUP_PLAN


def subscription_start_trial(*, customer: Customer, trial_days: int | None = None) -> Subscription:
    days = settings.DEFAULT_TRIAL_DAYS if trial_days is None else trial_days
    return Subscription.objects.create(
        customer=customer,
        plan=SIGNUP_PLAN,
        status=Subscription.Status.TRIALING,
        trial_ends_at=timezone.now() + timedelta(days=days),
    )


@transaction.atomic
def subscription_set_plan(*, customer: Customer, plan: str, period_days: int = 30) -> Subscription:
    """Staff override of the plan (the guide's `npm run customer -- upgrade`).

    Marks the subscription active for one period from now. Paid changes made through
    Stripe go through the Stripe webhooks instead, which overwrite this.
    """
    if plan not in ASSIGNABLE_PLANS:
        raise ValueError(f"Unknown plan {plan!r}; choose one of {', '.join(ASSIGNABLE_PLANS)}")
    subscription = Subscription.objects.select_for_update().get(customer=customer)
    now = timezone.now()
    subscription.plan = plan
    if plan == "trial":
        subscription.status = Subscription.Status.TRIALING
        subscription.trial_ends_at = now + timedelta(days=settings.DEFAULT_TRIAL_DAYS)
    else:
        subscription.status = Subscription.Status.ACTIVE
        subscription.current_period_start = now
        subscription.current_period_end = now + timedelta(days=period_days)
    subscription.save()
    return subscription
