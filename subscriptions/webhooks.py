"""Stripe webhooks: store each verified event once, then apply it idempotently.

Handlers look up the customer, check current state, and re-fetch the subscription from
Stripe rather than trusting the event body, so duplicates change nothing and an event
older than the newest applied one is ignored. What a change of plan or status means for the
license and the instance is lifecycle.entitlements (through lifecycle.plan_changes, which also
emails a cancellation made at Stripe). A second live subscription of the same
customer (two paid checkouts) is canceled and refunded (subscriptions.duplicates). After an
event is applied (or ignored), what it names is copied into the staff's dj-stripe mirror by a
task enqueued on commit (subscriptions.mirror); this inbox stays the only intake.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from core.audit import audit_record
from customers.models import Customer
from lifecycle import plan_changes
from subscriptions import duplicates, mirror, payments, refunds, services, stripe_api, tasks
from subscriptions.models import Refund, StripeEvent

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")
HANDLED = (*SUBSCRIPTION_EVENTS, *INVOICE_EVENTS, "checkout.session.completed", "charge.refunded")


def _storable(value):
    """The event with NUL characters replaced (U+FFFD): PostgreSQL refuses them in text and
    JSON, and an event that cannot be stored would be retried by Stripe for three days."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def stripe_event_receive(*, event: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event once and apply it, in one transaction (one commit per event);
    (row, created). A redelivery of an applied event changes nothing. A handler's failure is
    stored as `failed` and re-raised after the commit (→ 5xx, Stripe retries)."""
    with transaction.atomic():
        row, created = _event_insert(event)
        failed = _event_apply(row)
    if failed is not None:
        raise failed
    return row, created


def stripe_event_process(*, event_id: int) -> StripeEvent:
    """Apply one stored event, once: `processed` if that changed something (one audit row),
    `ignored` if not. A failure marks it `failed` and re-raises (→ 5xx, Stripe retries; staff
    can also replay it from the admin)."""
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().get(pk=event_id)
        failed = _event_apply(row)
    if failed is not None:
        raise failed
    return row


def _event_insert(event: dict) -> tuple[StripeEvent, bool]:
    """INSERT ... ON CONFLICT DO NOTHING: one statement stores a new event, and holds its row
    until the caller's transaction ends; a concurrent delivery of the same event waits on it,
    then finds it (locked) as already stored."""
    event = _storable(event)
    created_ts = event.get("created")
    row = StripeEvent(
        stripe_event_id=event["id"],
        type=event["type"],
        stripe_created=datetime.fromtimestamp(created_ts, tz=UTC)
        if isinstance(created_ts, int)
        else None,
        payload=event,
        received_at=timezone.now(),
    )
    names = ("stripe_event_id", "type", "stripe_created", "payload", "status", "attempts")
    names += ("last_error", "received_at")
    fields = [StripeEvent._meta.get_field(name) for name in names]
    values = [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields]
    # Table and column names come from the model, values are parameters.
    table = connection.ops.quote_name(StripeEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608
    sql += "ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        inserted = cursor.fetchone()
    if inserted is None:
        return StripeEvent.objects.select_for_update().get(stripe_event_id=event["id"]), False
    row.pk = inserted[0]
    row._state.adding = False
    return row, True


def _event_apply(row: StripeEvent) -> Exception | None:
    """Apply a stored event whose row the caller holds locked, unless it was already applied
    or ignored; the handler's exception, stored on the row, is returned for the caller to
    raise after its commit."""
    if row.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return None
    row.attempts += 1
    try:
        with transaction.atomic():
            outcome = _dispatch(row)
    except Exception as exc:
        row.status = StripeEvent.Status.FAILED
        row.last_error = f"{type(exc).__name__}: {exc}"[:4000]
        row.save(update_fields=["status", "last_error", "attempts"])
        logger.exception("Stripe event %s (%s) failed", row.stripe_event_id, row.type)
        return exc
    row.status = outcome
    row.last_error = ""
    row.processed_at = timezone.now()
    row.save(update_fields=["status", "last_error", "attempts", "processed_at"])
    if mirror.mirrors_event(row):
        # The staff's dj-stripe mirror, after commit and outside this handling: a broker
        # that cannot take the task is logged (robust), not raised.
        event_pk = row.pk
        transaction.on_commit(lambda: tasks.stripe_mirror_event_task.delay(event_pk), robust=True)
    return None


def _customer_for(obj: dict) -> Customer | None:
    metadata = obj.get("metadata") or {}
    customer_id = metadata.get("customer_id") or obj.get("client_reference_id")
    if customer_id:
        found = Customer.objects.filter(customer_id=customer_id).first()
        if found:
            return found
    stripe_customer = obj.get("customer")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if stripe_customer:
        return Customer.objects.filter(stripe_customer_id=stripe_customer).first()
    return None


def _subscription_id_of(obj: dict) -> str | None:
    if obj.get("object") == "subscription":
        return obj["id"]
    sub = obj.get("subscription")
    if isinstance(sub, dict):
        return sub.get("id")
    if sub:
        return sub
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def _dispatch(row: StripeEvent) -> str:
    """`processed` if handling the event changed something here, with one audit row saying
    what; `ignored` (and no audit row) if it changed nothing: not a type we handle, not our
    customer's, older than what was applied, or already applied (a redelivery)."""
    if row.type not in HANDLED:
        return StripeEvent.Status.IGNORED
    obj = row.payload.get("data", {}).get("object", {})
    customer = _customer_for(obj)
    if customer is None:
        # Not ours (e.g. `stripe trigger` test data): nothing to do, and nothing to retry.
        logger.warning("Stripe event %s: no customer for %s", row.stripe_event_id, obj.get("id"))
        return StripeEvent.Status.IGNORED
    changed = _apply(row, obj, customer)
    if not changed:
        return StripeEvent.Status.IGNORED
    # Written in the handler's transaction: a failed handler leaves no audit row either.
    audit_record(
        action=f"stripe.{row.type}",
        customer=customer,
        actor=f"stripe:{row.stripe_event_id}",
        changed=changed,
    )
    return StripeEvent.Status.PROCESSED


def _refund_states(customer: Customer) -> dict[int, tuple]:
    return {
        pk: state
        for pk, *state in Refund.objects.filter(customer=customer).values_list(
            "pk", "stripe_refund_id", "status", "amount", "payment_id", "failure_message"
        )
    }


def _apply(row: StripeEvent, obj: dict, customer: Customer) -> list[str]:
    """Apply one event of `customer`; what it changed ("refunds", "payments",
    "subscription", "duplicate_subscription"), none if nothing."""
    if row.type == "charge.refunded":
        before = _refund_states(customer)
        rows = [
            refunds.refund_record_from_stripe(customer=customer, stripe_refund=stripe_refund)
            for stripe_refund in stripe_api.refunds_for_charge(obj["id"])
        ]
        after = _refund_states(customer)
        return ["refunds"] if any(before.get(r.pk) != after.get(r.pk) for r in rows) else []
    changed = []
    paid = row.type in ("invoice.paid", "invoice.payment_succeeded") and obj.get("amount_paid")
    if paid and payments.payment_record_invoice(customer=customer, invoice=obj).changed:
        changed.append("payments")
    subscription_id = _subscription_id_of(obj)
    if not subscription_id:
        return changed
    # Held until the handler commits: a change we ask Stripe for meanwhile waits, and this
    # reads Stripe after one made before, so what it applies is never the older state.
    current = services.subscription_lock(customer=customer)
    actor = f"stripe:{row.stripe_event_id}"
    kept = current.stripe_subscription_id
    if kept and kept != subscription_id and current.status in services.LIVE_STATUSES:
        stripe_sub = stripe_api.subscription_retrieve(subscription_id)
        if stripe_sub.get("status") not in stripe_api.ENDED_STATUSES or (
            duplicates.is_canceled_duplicate(stripe_sub)
        ):
            return changed + _duplicate_resolved(customer, stripe_sub, kept, actor)
        # An event about an older, replaced subscription must not overwrite the live one.
        return changed
    if (
        row.stripe_created
        and current.stripe_event_at
        and row.stripe_created < current.stripe_event_at
    ):
        return changed  # older than what we applied: Stripe reordered it
    stripe_sub = stripe_api.subscription_retrieve(subscription_id)
    try:
        change = plan_changes.subscription_apply_from_stripe(
            customer=customer, stripe_sub=stripe_sub, actor=actor, event_at=row.stripe_created
        )
    except services.DuplicateSubscription as duplicate:
        # Another handler applied a different subscription first (two paid checkouts).
        return changed + _duplicate_resolved(customer, stripe_sub, duplicate.kept, actor)
    return [*changed, "subscription"] if change.changed else changed


def _duplicate_resolved(customer: Customer, stripe_sub: dict, kept: str, actor: str) -> list[str]:
    outcome = duplicates.subscription_duplicate_resolve(
        customer=customer, stripe_sub=stripe_sub, kept=kept, actor=actor
    )
    return ["duplicate_subscription"] if outcome.canceled_now or outcome.refunds else []
