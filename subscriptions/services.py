"""Writes for subscriptions: trials, Stripe checkout, plan changes, cancellations.

Stripe is the source of truth for paid subscriptions: we call it, then apply what it
answered (and what its webhooks later say) to the local row with `subscription_apply_stripe`.
Each change says whether the entitlement (plan, status, period) changed; what follows from
that in other apps (re-sign the license, redeploy) is lifecycle.entitlements.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status

from core.audit import audit_record
from core.errors import ApplicationError
from core.plans import ASSIGNABLE_PLANS, PAID_PLANS, PLANS, SIGNUP_PLAN
from core.timestamps import iso
from customers.models import Customer
from subscriptions import stripe_api
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)


# Local statuses of a subscription that is the customer's one: a second one is a duplicate.
LIVE_STATUSES = ("active", "trialing", "past_due")


class DuplicateSubscription(Exception):
    """Stripe reports a live subscription that is not the customer's one (`kept`): two
    checkouts were paid. It is not applied; the caller cancels and refunds it."""

    def __init__(self, subscription_id: str, kept: str) -> None:
        super().__init__(f"{subscription_id} duplicates the customer's subscription {kept}")
        self.subscription_id = subscription_id
        self.kept = kept


@dataclass(frozen=True)
class SubscriptionChange:
    """A subscription after a change; whether its entitlement (plan, status, period end)
    changed, which decides if the license is re-signed and the instance redeployed; and
    whether this call changed the row at all. A repeat, or a concurrent duplicate that found
    the change made, changed nothing: the change is audited and told by the call that made it.
    """

    subscription: Subscription
    entitlement_changed: bool
    changed: bool
    # Stripe's state applied by this call turned a cancellation at period end on (it was off).
    cancel_scheduled: bool = False
    # ... or ended a live subscription that was not due to end at its period end.
    ended_unscheduled: bool = False


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


# ---------------------------------------------------------------- Stripe customer
def customer_stripe_ensure(*, customer: Customer) -> str:
    """The customer's Stripe id, creating the Stripe customer once (idempotent by our id)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    try:
        stripe_id = stripe_api.customer_create(
            customer_id=customer.customer_id,
            email=customer.email,
            name=customer.company_name or customer.full_name,
        )
    except stripe_api.StripeError as exc:
        Customer.objects.filter(pk=customer.pk).update(stripe_sync_error=exc.user_message[:1000])
        raise
    Customer.objects.filter(pk=customer.pk).update(
        stripe_customer_id=stripe_id, stripe_sync_error=""
    )
    customer.stripe_customer_id = stripe_id
    return stripe_id


def customer_stripe_recreate(*, customer: Customer, stale_id: str, actor: str) -> str:
    """Stripe no longer knows the stored customer id (another account, or a Stripe that lost
    its data): make the Stripe customer again, store the new id, and say so in the audit log."""
    stripe_id = stripe_api.customer_create(
        customer_id=customer.customer_id,
        email=customer.email,
        name=customer.company_name or customer.full_name,
        idempotency_key=f"customer-recreate:{customer.customer_id}:{stale_id}",
    )
    Customer.objects.filter(pk=customer.pk).update(
        stripe_customer_id=stripe_id, stripe_sync_error=""
    )
    customer.stripe_customer_id = stripe_id
    audit_record(
        action="stripe.customer_recreated",
        customer=customer,
        actor=actor,
        stale_stripe_customer_id=stale_id,
        stripe_customer_id=stripe_id,
    )
    logger.warning(
        "Stripe customer %s of %s was missing; recreated as %s",
        stale_id,
        customer.customer_id,
        stripe_id,
    )
    return stripe_id


def _stripe_failure(exc: stripe_api.StripeError) -> ApplicationError:
    if exc.retryable:
        return ApplicationError(
            f"Stripe is unavailable: {exc.user_message}. Nothing was changed here; Stripe "
            "may have applied it (a lost answer): retry later, which is safe.",
            error="Payment provider unavailable",
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return ApplicationError(
        exc.user_message,
        error="Payment provider refused",
        status_code=status.HTTP_402_PAYMENT_REQUIRED,
        details={"code": exc.code} if exc.code else None,
    )


def require_stripe() -> None:
    """503 when no Stripe is configured: the money endpoints cannot work without it."""
    if not stripe_api.is_configured():
        raise ApplicationError(
            "Stripe is not configured (STRIPE_SECRET_KEY).",
            error="Payment provider unavailable",
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )


def _price_for(plan: str) -> str:
    """The plan's Stripe price; a missing one is an operator error (`manage.py stripe_setup`)."""
    return stripe_api.price_id_for_plan(plan, PLANS[plan].stripe_lookup_key)


def _metered_prices() -> list[str]:
    """The overage meters' metered prices, in `stripe_api.OVERAGE_METERS` order: a paid
    subscription carries one item per meter, so its overage pushed to the meters is billed."""
    keys = [stripe_api.overage_lookup_key(meter) for meter in stripe_api.OVERAGE_METERS]
    found = stripe_api.price_ids_by_lookup_key(keys)
    if missing := [key for key in keys if key not in found]:
        raise stripe_api.StripeError(
            f"No Stripe price with lookup key {', '.join(missing)}; run `manage.py stripe_setup`.",
            code="price_missing",
        )
    return [found[key] for key in keys]


# ---------------------------------------------------------------- checkout
def checkout_session_start(
    *, customer: Customer, plan: str, success_url: str, cancel_url: str, actor: str = "system"
) -> dict:
    """A Stripe Checkout session for `plan`, unless the customer already pays or is paying.

    Refused (409, naming it) while the customer has a live Stripe subscription or an open
    session for another plan; an open session for the same plan is returned again. Checkouts
    of one customer run one at a time (a lock on its subscription row), so two requests at
    once cannot both open one. A stored Stripe customer that Stripe no longer knows is made
    again, once.
    """
    require_stripe()
    if plan not in PAID_PLANS:
        raise ApplicationError(f"Plan {plan!r} cannot be bought.", error="Invalid plan")
    with transaction.atomic():
        # One checkout of a customer at a time: an UPDATE takes the row's lock on PostgreSQL,
        # and the database's write lock on SQLite (where SELECT ... FOR UPDATE takes none).
        Subscription.objects.filter(customer=customer).update(revision=F("revision"))
        subscription = Subscription.objects.get(customer=customer)
        if subscription.stripe_subscription_id and subscription.status in ("active", "past_due"):
            raise _subscription_exists(
                customer, subscription.stripe_subscription_id, plan=subscription.plan
            )
        try:
            stripe_customer_id = customer_stripe_ensure(customer=customer)
            try:
                return _checkout_open(
                    customer, subscription, stripe_customer_id, plan, (success_url, cancel_url)
                )
            except stripe_api.StripeError as exc:
                if exc.is_missing("customer"):
                    stripe_customer_id = customer_stripe_recreate(
                        customer=customer, stale_id=stripe_customer_id, actor=actor
                    )
                elif exc.is_missing("line_items"):
                    stripe_api.price_cache_clear()  # prices made again since they were cached
                else:
                    raise
            return _checkout_open(
                customer, subscription, stripe_customer_id, plan, (success_url, cancel_url)
            )
        except stripe_api.StripeError as exc:
            raise _stripe_failure(exc) from exc


def _subscription_exists(
    customer: Customer, subscription_id: str, plan: str | None
) -> ApplicationError:
    return ApplicationError(
        f"{customer.customer_id} already has a live subscription ({subscription_id}"
        + (f", {plan}" if plan else "")
        + "); use upgrade to change plan.",
        error="Subscription exists",
        status_code=status.HTTP_409_CONFLICT,
        details={"stripe_subscription_id": subscription_id, "plan": plan},
    )


def _checkout_open(
    customer: Customer,
    subscription: Subscription,
    stripe_customer_id: str,
    plan: str,
    urls: tuple[str, str],
) -> dict:
    live = stripe_api.subscriptions_live(stripe_customer_id=stripe_customer_id)
    if live:
        raise _subscription_exists(customer, live[0]["id"], _plan_of(live[0]))
    sessions = stripe_api.checkout_sessions_open(stripe_customer_id=stripe_customer_id)
    other = [s for s in sessions if (s.get("metadata") or {}).get("plan") != plan]
    if other:
        open_plan = (other[0].get("metadata") or {}).get("plan")
        raise ApplicationError(
            f"{customer.customer_id} has an open checkout for {open_plan or 'another plan'} "
            f"({other[0]['id']}); pay it, or let it expire, before buying {plan}.",
            error="Checkout already open",
            status_code=status.HTTP_409_CONFLICT,
            details={
                "session_id": other[0]["id"],
                "plan": open_plan,
                "checkout_url": other[0].get("url"),
                "expires_at": iso(_ts(other[0].get("expires_at"))),
            },
        )
    if sessions:  # the same plan: the session already open is the one to pay
        return {"session_id": sessions[0]["id"], "checkout_url": sessions[0]["url"]}
    success_url, cancel_url = urls
    price_id = _price_for(plan)
    request = f"{plan}|{price_id}|{success_url}|{cancel_url}"
    request_hash = hashlib.sha256(request.encode()).hexdigest()[:16]
    session = stripe_api.checkout_session_create(
        stripe_customer_id=stripe_customer_id,
        price_id=price_id,
        metered_price_ids=_metered_prices(),
        success_url=success_url,
        cancel_url=cancel_url,
        customer_id=customer.customer_id,
        plan=plan,
        idempotency_key=(
            f"checkout:{customer.customer_id}:{subscription.revision}:{stripe_customer_id}:"
            f"{request_hash}"
        ),
    )
    return {"session_id": session["id"], "checkout_url": session["url"]}


# ---------------------------------------------------------------- applying Stripe state
def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _plan_of_price(price) -> str | None:
    if isinstance(price, dict):
        for plan in PAID_PLANS:
            if price.get("lookup_key") == PLANS[plan].stripe_lookup_key:
                return plan
            if price.get("id") and price["id"] == settings.STRIPE_PRICE_IDS.get(plan):
                return plan
    return None


def _base_item(stripe_sub: dict) -> dict | None:
    """The plan's (licensed) item of a subscription that also has one metered item per
    overage meter: the item whose price is a plan's, else the first item not metered."""
    items = (stripe_sub.get("items") or {}).get("data") or []
    for item in items:
        if _plan_of_price(item.get("price")):
            return item
    for item in items:
        price = item.get("price")
        if not (
            isinstance(price, dict)
            and (price.get("recurring") or {}).get("usage_type") == "metered"
        ):
            return item
    return None


def _plan_of(stripe_sub: dict) -> str | None:
    item = _base_item(stripe_sub)
    if plan := _plan_of_price(item.get("price") if item else None):
        return plan
    plan = (stripe_sub.get("metadata") or {}).get("plan")
    return plan if plan in PAID_PLANS else None


def _period(stripe_sub: dict) -> tuple[datetime | None, datetime | None]:
    start, end = stripe_sub.get("current_period_start"), stripe_sub.get("current_period_end")
    items = (stripe_sub.get("items") or {}).get("data") or []
    if not end and items:  # newer API versions keep the period on the item
        start, end = items[0].get("current_period_start"), items[0].get("current_period_end")
    return _ts(start), _ts(end)


def _stripe_state(subscription: Subscription) -> tuple:
    """What the row holds of Stripe's subscription (not when it was last applied)."""
    return (
        subscription.plan,
        subscription.status,
        subscription.stripe_subscription_id,
        subscription.stripe_price_id,
        subscription.current_period_start,
        subscription.current_period_end,
        subscription.cancel_at_period_end,
        subscription.canceled_at,
        subscription.trial_ends_at,
    )


@transaction.atomic
def subscription_apply_stripe(
    *, customer: Customer, stripe_sub: dict, event_at: datetime | None = None
) -> SubscriptionChange:
    """Make the local row say what Stripe says, and say what that changed.

    An event older than the newest one applied is ignored, so Stripe's retries and
    reordering never roll the state back.
    """
    subscription = Subscription.objects.select_for_update().get(customer=customer)
    if event_at and subscription.stripe_event_at and event_at < subscription.stripe_event_at:
        return SubscriptionChange(subscription, entitlement_changed=False, changed=False)
    kept = subscription.stripe_subscription_id
    if (
        kept
        and kept != stripe_sub["id"]
        and subscription.status in LIVE_STATUSES
        and stripe_sub.get("status") not in stripe_api.ENDED_STATUSES
    ):
        raise DuplicateSubscription(stripe_sub["id"], kept)
    before = (subscription.plan, subscription.status, subscription.current_period_end)
    stored = _stripe_state(subscription)
    was_cancel_scheduled = subscription.cancel_at_period_end
    was_live = subscription.status in LIVE_STATUSES and bool(subscription.stripe_subscription_id)
    plan = _plan_of(stripe_sub) or subscription.plan
    subscription.plan = plan
    subscription.status = stripe_sub.get("status") or subscription.status
    subscription.stripe_subscription_id = stripe_sub["id"]
    base = _base_item(stripe_sub)
    if base and isinstance(base.get("price"), dict):
        subscription.stripe_price_id = base["price"]["id"]
    subscription.current_period_start, subscription.current_period_end = _period(stripe_sub)
    subscription.cancel_at_period_end = bool(stripe_sub.get("cancel_at_period_end"))
    subscription.canceled_at = _ts(stripe_sub.get("canceled_at"))
    subscription.trial_ends_at = _ts(stripe_sub.get("trial_end")) or subscription.trial_ends_at
    if event_at:
        subscription.stripe_event_at = max(event_at, subscription.stripe_event_at or event_at)
    subscription.save()
    entitlement = (subscription.plan, subscription.status, subscription.current_period_end)
    return SubscriptionChange(
        subscription,
        entitlement_changed=before != entitlement,
        changed=stored != _stripe_state(subscription),
        cancel_scheduled=subscription.cancel_at_period_end and not was_cancel_scheduled,
        ended_unscheduled=was_live
        and not was_cancel_scheduled
        and subscription.status == Subscription.Status.CANCELED,
    )


def subscription_lock(*, customer: Customer) -> Subscription:
    """The customer's subscription, its row locked until the caller's transaction ends.

    A change we ask Stripe for (plan, cancel at period end, cancel now) holds it from the
    check of the current state to the row saying what Stripe answered, so of concurrent
    duplicates one makes the change and the others find it made, as a repeat would; a
    webhook takes it before re-reading the subscription from Stripe, so what it applies is
    never older than a change made meanwhile. An
    UPDATE takes the lock on PostgreSQL and SQLite alike (SELECT ... FOR UPDATE is a no-op on
    SQLite), as a checkout does.
    """
    Subscription.objects.filter(customer=customer).update(revision=F("revision"))
    subscription = Subscription.objects.get(customer=customer)
    customer.subscription = subscription
    return subscription


def _paid_subscription(
    customer: Customer, subscription: Subscription | None = None
) -> Subscription:
    subscription = subscription or customer.subscription
    if not subscription.stripe_subscription_id or subscription.status == "canceled":
        raise ApplicationError(
            f"{customer.customer_id} has no paid subscription"
            + (
                "; it is on the trial: start a paid plan with POST /api/subscriptions/checkout."
                if subscription.status == "trialing"
                else "."
            ),
            error="No active subscription",
            status_code=status.HTTP_409_CONFLICT,
        )
    return subscription


def _is_local_trial(subscription: Subscription) -> bool:
    """Whether the subscription is the signup trial (no Stripe subscription yet):
    cancellations of a trial are ours alone, Stripe has nothing to cancel."""
    trialing = subscription.status == Subscription.Status.TRIALING
    return trialing and not subscription.stripe_subscription_id


def subscription_trials_end_due(*, now: datetime | None = None) -> list[Customer]:
    """End the trials that were canceled at period end and whose end has come: canceled, not
    converted (the license then falls back as for any canceled customer). The customers whose
    trial ended; safe to run concurrently (the conditional UPDATE decides)."""
    now = now or timezone.now()
    ended = []
    due = Subscription.objects.filter(
        status=Subscription.Status.TRIALING,
        stripe_subscription_id="",
        cancel_at_period_end=True,
        trial_ends_at__lte=now,
    ).select_related("customer")
    for subscription in due:
        if Subscription.objects.filter(
            pk=subscription.pk, status=Subscription.Status.TRIALING
        ).update(status=Subscription.Status.CANCELED, canceled_at=subscription.trial_ends_at):
            ended.append(subscription.customer)
    return ended


def _bump_revision(subscription: Subscription) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(revision=F("revision") + 1)


def _applied_change(
    *, customer: Customer, subscription: Subscription, stripe_sub: dict
) -> SubscriptionChange:
    """After a change Stripe accepted: a new revision (the next change gets new idempotency
    keys), then the local row made to say what Stripe answered."""
    _bump_revision(subscription)
    return subscription_apply_stripe(customer=customer, stripe_sub=stripe_sub)


# ---------------------------------------------------------------- plan change
@transaction.atomic
def subscription_upgrade(*, customer: Customer, new_plan: str) -> SubscriptionChange:
    """Change plan now with Stripe's proration. A trial has nothing to change: 409 saying to
    start a checkout. Concurrent duplicates change it once (the others: 409 No change)."""
    subscription = subscription_lock(customer=customer)
    if _is_local_trial(subscription):
        _paid_subscription(customer, subscription)  # raises the 409 naming the checkout endpoint
    require_stripe()
    if new_plan not in PAID_PLANS:
        raise ApplicationError(f"Plan {new_plan!r} cannot be bought.", error="Invalid plan")
    subscription = _paid_subscription(customer, subscription)
    if subscription.plan == new_plan:
        raise ApplicationError(
            f"{customer.customer_id} is already on {new_plan}.",
            error="No change",
            status_code=status.HTTP_409_CONFLICT,
        )
    try:
        current = stripe_api.subscription_retrieve(subscription.stripe_subscription_id)
        base = _base_item(current)
        if base is None:
            raise stripe_api.StripeError(
                f"Subscription {subscription.stripe_subscription_id} has no plan item.",
                code="no_plan_item",
            )
        item_id = base["id"]
        price_id = _price_for(new_plan)
        updated = stripe_api.subscription_change_price(
            subscription_id=subscription.stripe_subscription_id,
            item_id=item_id,
            price_id=price_id,
            plan=new_plan,
            idempotency_key=f"upgrade:{subscription.stripe_subscription_id}:{subscription.revision}:{new_plan}",
        )
    except stripe_api.StripeError as exc:
        raise _stripe_failure(exc) from exc
    return _applied_change(customer=customer, subscription=subscription, stripe_sub=updated)


# ---------------------------------------------------------------- cancellation
@transaction.atomic
def subscription_cancel_at_period_end(*, customer: Customer, cancel: bool) -> SubscriptionChange:
    """Graceful cancel (True) or keep (False); the customer keeps access until the period ends.

    A trial canceled at period end ends at `trial_ends_at` without converting
    (subscription_trials_end_due); keep undoes that. Asking for what is already so changes
    nothing (`changed` is False), also for concurrent duplicates.
    """
    subscription = subscription_lock(customer=customer)
    if _is_local_trial(subscription):
        changed = subscription.cancel_at_period_end != cancel
        if changed:
            subscription.cancel_at_period_end = cancel
            subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
        return SubscriptionChange(subscription, entitlement_changed=False, changed=changed)
    require_stripe()
    subscription = _paid_subscription(customer, subscription)
    if subscription.cancel_at_period_end == cancel:
        return SubscriptionChange(subscription, entitlement_changed=False, changed=False)
    try:
        updated = stripe_api.subscription_set_cancel_at_period_end(
            subscription_id=subscription.stripe_subscription_id,
            cancel=cancel,
            idempotency_key=f"cape:{subscription.stripe_subscription_id}:{subscription.revision}:{int(cancel)}",
        )
    except stripe_api.StripeError as exc:
        raise _stripe_failure(exc) from exc
    return _applied_change(customer=customer, subscription=subscription, stripe_sub=updated)


@transaction.atomic
def subscription_cancel_now(*, customer: Customer) -> SubscriptionChange:
    """Cancel the Stripe subscription at once (a trial: end it now). A paid subscription may be
    canceled again, also concurrently: a canceled one is left as it is (`changed` is False).
    A trial ended once is no longer a trial: canceling it again is refused as for any
    customer without a paid subscription."""
    subscription = subscription_lock(customer=customer)
    if _is_local_trial(subscription):
        subscription.status = Subscription.Status.CANCELED
        subscription.canceled_at = timezone.now()
        subscription.cancel_at_period_end = False
        subscription.save(
            update_fields=["status", "canceled_at", "cancel_at_period_end", "updated_at"]
        )
        return SubscriptionChange(subscription, entitlement_changed=True, changed=True)
    require_stripe()
    if not subscription.stripe_subscription_id:
        raise ApplicationError(
            f"{customer.customer_id} has no paid subscription to cancel.",
            error="No active subscription",
            status_code=status.HTTP_409_CONFLICT,
        )
    if subscription.status == Subscription.Status.CANCELED:
        return SubscriptionChange(subscription, entitlement_changed=False, changed=False)
    try:
        canceled = stripe_api.subscription_cancel(
            subscription_id=subscription.stripe_subscription_id,
            idempotency_key=f"cancel:{subscription.stripe_subscription_id}",
        )
    except stripe_api.StripeError as exc:
        raise _stripe_failure(exc) from exc
    _bump_revision(subscription)  # a later checkout must not replay the one that was paid
    return subscription_apply_stripe(customer=customer, stripe_sub=canceled)
