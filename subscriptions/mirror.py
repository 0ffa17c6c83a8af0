"""The staff's read-only mirror of Stripe in dj-stripe's tables, and the selector that reads it.

This is the one module of ours that calls dj-stripe (its models' `api_retrieve` and
`sync_from_stripe_data`, and its `djstripe_sync_models` command). dj-stripe talks to Stripe
through the `stripe` library itself (its global client: `STRIPE_API_HOST` in settings points it
at the simulator); what we read ourselves goes through `stripe_api`, the only module of ours
that imports `stripe`.

How the mirror is fed (`stripe_event_mirror`, run by a task enqueued after our handler
committed, so it never fails or slows the handling of an event):

1. From the event's object, list what it names that staff need (its customer, subscription,
   invoice, payment intent, charge, refunds), in that order.
2. Retrieve each from Stripe again (the current state, so a late or reordered event cannot
   write an old one) and sync it with dj-stripe. An invoice is synced with its InvoicePayments
   under `payments` (dj-stripe 2.11 has no model for them and Stripe never puts them in an
   event), and the payment intents and charges of those payments follow it.
3. Each object is synced in its own transaction that also deletes dj-stripe's APIKey rows:
   dj-stripe stores the key it was called with (`Account.get_or_retrieve_for_api_key`) and has
   no setting to stop it; deleted before commit, the secret never lands in a committed row.
4. A failure is logged and recorded (audit row `stripe.mirror_failed` naming what failed and
   why), never raised: the backfill (`stripe_mirror_backfill`) or the next event repairs it.

What API 2026-08-26 leaves dj-stripe unable to fill: `Invoice.charge`, `Invoice.payment_intent`
and `Invoice.subscription` stay empty (the fields left invoices; `invoice_payments` and
`invoice_subscription_id` below read the current places), as do `Charge.invoice`.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from djstripe import models as dj
from djstripe.exceptions import InvalidStripeAPIKey
from djstripe.models.api import get_api_key_details_by_prefix

from core.audit import audit_record
from customers.models import Customer
from subscriptions import stripe_api
from subscriptions.models import StripeEvent

logger = logging.getLogger(__name__)

# Stripe object type → dj-stripe model, in the order one event's objects are synced.
MIRRORED = {
    "customer": dj.Customer,
    "subscription": dj.Subscription,
    "invoice": dj.Invoice,
    "payment_intent": dj.PaymentIntent,
    "charge": dj.Charge,
    "refund": dj.Refund,
}
# What `stripe_mirror_backfill` asks `djstripe_sync_models` for (SubscriptionItems come with
# their subscriptions, prices and products with the items, the account with the first object).
BACKFILL_MODELS = ("Customer", "Subscription", "Invoice", "PaymentIntent", "Charge", "Refund")
# Event object types that name something mirrored (an InvoicePayment names its invoice).
_MIRRORED_EVENT_OBJECTS = {*MIRRORED, "invoice_payment", "checkout.session"}
STRIPE_API_HOST = "https://api.stripe.com"


@dataclass
class MirrorRun:
    """What one mirror run did: (type, id) synced, and (type, id, why) not."""

    synced: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: str = ""


def mirror_is_configured() -> str:
    """ "" when the mirror can run, else why not (no key, or one dj-stripe refuses)."""
    key = settings.STRIPE_SECRET_KEY
    if not key:
        return "STRIPE_SECRET_KEY is not set"
    try:
        get_api_key_details_by_prefix(key)
    except InvalidStripeAPIKey:
        return "dj-stripe accepts only keys shaped like Stripe's (sk_test_/sk_live_, 24+ more)"
    return ""


def mirrors_event(event: StripeEvent) -> bool:
    """Whether the event names something mirrored and the mirror can run (no task otherwise)."""
    obj = (event.payload.get("data") or {}).get("object") or {}
    return obj.get("object") in _MIRRORED_EVENT_OBJECTS and not mirror_is_configured()


# ---------------------------------------------------------------- writes (dj-stripe's sync)
def stripe_event_mirror(*, event_id: int) -> MirrorRun:
    """Mirror what one stored event names (the steps are in the module docstring)."""
    run = MirrorRun()
    if why := mirror_is_configured():
        run.skipped = why
        return run
    event = StripeEvent.objects.filter(pk=event_id).first()
    if event is None:
        run.skipped = "no such event"
        return run
    stripe_api.global_client_configure()
    obj = (event.payload.get("data") or {}).get("object") or {}
    for kind, object_id in _named_objects(obj):
        _mirror_object(kind, object_id, run)
    if run.failed:
        customer = _customer_of(obj)
        logger.warning("Stripe mirror of %s incomplete: %s", event.stripe_event_id, run.failed)
        audit_record(
            action="stripe.mirror_failed",
            customer=customer,
            actor=f"stripe:{event.stripe_event_id}",
            event_type=event.type,
            failed=[list(item) for item in run.failed],
        )
    return run


def stripe_mirror_backfill() -> MirrorRun:
    """Backfill: dj-stripe's own `djstripe_sync_models` for the mirrored models, then each
    invoice again with its payments (which that command cannot fetch), in one transaction that
    ends by deleting dj-stripe's APIKey rows (the command stores the key it ran with)."""
    run = MirrorRun()
    if why := mirror_is_configured():
        run.skipped = why
        return run
    stripe_api.global_client_configure()
    out, err = io.StringIO(), io.StringIO()
    with transaction.atomic():
        call_command(
            "djstripe_sync_models", *BACKFILL_MODELS, stdout=out, stderr=err, fail_on_error=False
        )
        _api_keys_delete()
    if err.getvalue().strip():
        run.failed.append(("djstripe_sync_models", "", err.getvalue().strip()[:4000]))
    for invoice_id in dj.Invoice.objects.values_list("id", flat=True):
        _mirror_object("invoice", invoice_id, run, follow=False)
    if run.failed:
        logger.warning("Stripe mirror backfill incomplete: %s", run.failed)
        audit_record(
            action="stripe.mirror_failed",
            actor="task:stripe_mirror_backfill",
            failed=[list(item) for item in run.failed],
        )
    return run


def _mirror_object(kind: str, object_id: str, run: MirrorRun, *, follow: bool = True) -> None:
    if (kind, object_id) in run.synced:
        return
    key = settings.STRIPE_SECRET_KEY
    model = MIRRORED[kind]
    followers: list[tuple[str, str]] = []
    try:
        with transaction.atomic():
            data = model(id=object_id).api_retrieve(api_key=key)
            if kind == "invoice":
                payments = stripe_api.invoice_payments_paid(object_id)
                data["payments"] = {"object": "list", "data": payments, "has_more": False}
                followers = _payment_objects(payments)
            elif kind == "charge":
                followers = [("refund", r["id"]) for r in stripe_api.refunds_for_charge(object_id)]
            model.sync_from_stripe_data(data, api_key=key)
            _api_keys_delete()
    except Exception as exc:  # the mirror never fails what triggered it
        logger.warning("Stripe mirror of %s %s failed: %s", kind, object_id, exc)
        run.failed.append((kind, object_id, f"{type(exc).__name__}: {exc}"[:500]))
        return
    run.synced.append((kind, object_id))
    if follow:
        for follower in followers:
            _mirror_object(*follower, run)


def _api_keys_delete() -> None:
    """dj-stripe saved the key it was called with as an APIKey row: remove it before commit."""
    dj.APIKey.objects.all().delete()


def _id(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _payment_objects(payments: list[dict]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for payment in payments:
        reference = stripe_api.payment_reference(payment)
        if reference.get("payment_intent"):
            found.append(("payment_intent", reference["payment_intent"]))
        elif reference.get("charge"):
            found.append(("charge", reference["charge"]))
    return found


def _named_objects(obj: dict) -> list[tuple[str, str]]:
    """What an event's object names that staff need, in sync order (customer first)."""
    kind = obj.get("object", "")
    named: list[tuple[str, str]] = []
    if customer := _id(obj.get("customer")):
        named.append(("customer", customer))
    if kind == "customer":
        named.append(("customer", obj["id"]))
    elif kind == "subscription":
        named.append(("subscription", obj["id"]))
        if latest := _id(obj.get("latest_invoice")):
            named.append(("invoice", latest))
    elif kind == "invoice":
        if subscription := invoice_subscription_id(obj):
            named.append(("subscription", subscription))
        named.append(("invoice", obj["id"]))
    elif kind == "invoice_payment":
        named.append(("invoice", _id(obj.get("invoice"))))
    elif kind == "checkout.session":
        if subscription := _id(obj.get("subscription")):
            named.append(("subscription", subscription))
        if invoice := _id(obj.get("invoice")):
            named.append(("invoice", invoice))
    elif kind == "payment_intent":
        named.append(("payment_intent", obj["id"]))
        if charge := _id(obj.get("latest_charge")):
            named.append(("charge", charge))
    elif kind == "charge":
        if intent := _id(obj.get("payment_intent")):
            named.append(("payment_intent", intent))
        named.append(("charge", obj["id"]))
    elif kind == "refund":
        if charge := _id(obj.get("charge")):
            named.append(("charge", charge))
        named.append(("refund", obj["id"]))
    return [item for n, item in enumerate(named) if item[1] and item not in named[:n]]


def _customer_of(obj: dict) -> Customer | None:
    stripe_customer = obj.get("id") if obj.get("object") == "customer" else _id(obj.get("customer"))
    if not stripe_customer:
        return None
    return Customer.objects.filter(stripe_customer_id=stripe_customer).first()


# ---------------------------------------------------------------- reads (for staff pages)
@dataclass(frozen=True)
class MirrorInvoice:
    id: str
    number: str
    status: str
    billing_reason: str
    currency: str
    amount_due: int  # cents, as Stripe counts
    amount_paid: int
    total: int
    subscription_id: str
    hosted_invoice_url: str
    created: datetime | None
    dashboard_url: str


@dataclass(frozen=True)
class MirrorPayment:
    """An InvoicePayment (API 2026-08-26), kept in its invoice's mirrored data."""

    id: str
    invoice_id: str
    status: str
    currency: str
    amount_paid: int
    payment_intent_id: str
    charge_id: str
    created: datetime | None


@dataclass(frozen=True)
class MirrorCharge:
    id: str
    status: str
    currency: str
    amount: int
    amount_refunded: int
    refunded: bool
    payment_intent_id: str
    receipt_url: str
    created: datetime | None
    dashboard_url: str


@dataclass(frozen=True)
class MirrorRefund:
    id: str
    status: str
    currency: str
    amount: int
    reason: str
    charge_id: str
    payment_intent_id: str
    created: datetime | None
    dashboard_url: str


@dataclass(frozen=True)
class BillingMirror:
    """One customer's Stripe billing as mirrored, newest first in each list."""

    stripe_customer_id: str
    invoices: list[MirrorInvoice]
    payments: list[MirrorPayment]
    charges: list[MirrorCharge]
    refunds: list[MirrorRefund]
    mirrored_at: datetime | None  # when the newest of these rows was last synced


def customer_billing_mirror(customer: Customer, limit: int = 50) -> BillingMirror:
    """The customer's newest `limit` invoices (with amounts and status, and their payments),
    charges and refunds from dj-stripe's tables, read only: it never calls Stripe. Dashboard
    links only with a real Stripe key against api.stripe.com (none for the simulator)."""
    stripe_customer_id = customer.stripe_customer_id
    if not stripe_customer_id:
        return BillingMirror("", [], [], [], [], None)
    links = _dashboard_links()
    # The dashboard link reads each row's account: loaded with the rows, not one query each.
    account = ("djstripe_owner_account",) if links else ()
    invoices = list(
        dj.Invoice.objects.filter(customer_id=stripe_customer_id)
        .select_related(*account)
        .order_by("-created")[:limit]
    )
    charges = list(
        dj.Charge.objects.filter(customer_id=stripe_customer_id)
        .select_related(*account)
        .order_by("-created")[:limit]
    )
    # (a refund's dashboard page is its charge's)
    refund_account = ("charge__djstripe_owner_account",) if links else ()
    refunds = list(
        dj.Refund.objects.filter(charge__customer_id=stripe_customer_id)
        .select_related(*refund_account)
        .order_by("-created")[:limit]
    )
    payments = [payment for invoice in invoices for payment in _payments_of(invoice)]
    payments.sort(key=lambda p: p.created or datetime.min.replace(tzinfo=UTC), reverse=True)
    synced = [row.djstripe_updated for row in (*invoices, *charges, *refunds)]
    return BillingMirror(
        stripe_customer_id=stripe_customer_id,
        invoices=[_invoice(row, links) for row in invoices],
        payments=payments,
        charges=[_charge(row, links) for row in charges],
        refunds=[_refund(row, links) for row in refunds],
        mirrored_at=max(synced, default=None),
    )


@dataclass(frozen=True)
class UnpaidInvoice:
    """An invoice not paid (yet): open (finalized, awaiting payment or a retry after a
    declined attempt), or uncollectible."""

    id: str
    status: str
    amount_remaining: int  # cents
    customer: Customer | None  # ours, when the Stripe customer is one of ours


def unpaid_invoices(limit: int = 10) -> tuple[int, list[UnpaidInvoice]]:
    """How many mirrored invoices are open or uncollectible, and the newest `limit` of them
    with the customer each belongs to (read only, from dj-stripe's tables)."""
    rows = dj.Invoice.objects.filter(stripe_data__status__in=["open", "uncollectible"])
    newest = list(rows.order_by("-created")[:limit])
    ours = {
        c.stripe_customer_id: c
        for c in Customer.objects.filter(stripe_customer_id__in={r.customer_id for r in newest})
    }
    return rows.count(), [
        UnpaidInvoice(
            id=row.id,
            status=row.stripe_data.get("status") or "",
            amount_remaining=row.stripe_data.get("amount_remaining") or 0,
            customer=ours.get(row.customer_id or ""),
        )
        for row in newest
    ]


def _dashboard_links() -> bool:
    key = settings.STRIPE_SECRET_KEY
    base = (settings.STRIPE_API_BASE or STRIPE_API_HOST).rstrip("/")
    return key.startswith(("sk_live_", "sk_test_")) and base == STRIPE_API_HOST


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) else None


def invoice_subscription_id(data: dict) -> str:
    """Where an invoice names its subscription since 2025 (`invoice.subscription` is gone)."""
    details = (data.get("parent") or {}).get("subscription_details") or {}
    return _id(details.get("subscription"))


def invoice_payments(data: dict) -> list[dict]:
    return list(((data.get("payments") or {}).get("data")) or [])


def _invoice(row: dj.Invoice, links: bool) -> MirrorInvoice:
    data = row.stripe_data
    return MirrorInvoice(
        id=row.id,
        number=data.get("number") or "",
        status=data.get("status") or "",
        billing_reason=data.get("billing_reason") or "",
        currency=data.get("currency") or "",
        amount_due=data.get("amount_due") or 0,
        amount_paid=data.get("amount_paid") or 0,
        total=data.get("total") or 0,
        subscription_id=invoice_subscription_id(data),
        hosted_invoice_url=data.get("hosted_invoice_url") or "",
        created=row.created,
        dashboard_url=row.get_stripe_dashboard_url() if links else "",
    )


def _payments_of(row: dj.Invoice) -> list[MirrorPayment]:
    found = []
    for payment in invoice_payments(row.stripe_data):
        reference = payment.get("payment") or {}
        found.append(
            MirrorPayment(
                id=payment.get("id", ""),
                invoice_id=row.id,
                status=payment.get("status") or "",
                currency=payment.get("currency") or "",
                amount_paid=payment.get("amount_paid") or 0,
                payment_intent_id=_id(reference.get("payment_intent")),
                charge_id=_id(reference.get("charge")),
                created=_epoch(payment.get("created")),
            )
        )
    return found


def _charge(row: dj.Charge, links: bool) -> MirrorCharge:
    data = row.stripe_data
    return MirrorCharge(
        id=row.id,
        status=data.get("status") or "",
        currency=data.get("currency") or "",
        amount=data.get("amount") or 0,
        amount_refunded=data.get("amount_refunded") or 0,
        refunded=bool(data.get("refunded")),
        payment_intent_id=_id(data.get("payment_intent")),
        receipt_url=data.get("receipt_url") or "",
        created=row.created,
        dashboard_url=row.get_stripe_dashboard_url() if links else "",
    )


def _refund(row: dj.Refund, links: bool) -> MirrorRefund:
    data = row.stripe_data
    return MirrorRefund(
        id=row.id,
        status=data.get("status") or "",
        currency=data.get("currency") or "",
        amount=data.get("amount") or 0,
        reason=data.get("reason") or "",
        charge_id=_id(data.get("charge")),
        payment_intent_id=_id(data.get("payment_intent")),
        created=row.created,
        dashboard_url=row.get_stripe_dashboard_url() if links else "",
    )
