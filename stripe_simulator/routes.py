"""The simulator's endpoints: for each, its handler, the pinned version's parameter type, the
parameters the simulator models, and the type of what it answers (see ``Route``).

Filters here are the generic ones of Stripe's list endpoints; the handlers are in
``resources``, ``billing`` and ``recurring``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import account, billing, recurring, resources, schema
from .state import Obj, Store

Handler = Callable[..., Obj]


# ---------------------------------------------------------------- generic handlers
def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def lister(object_type: str, *fields: str, extra: Any = None) -> Handler:
    """GET list handler: exact-match filters on ``fields``, ``created``, then a custom filter."""

    def handler(s: Store, p: Obj) -> Obj:
        items = resources.created_filter(s.all(object_type), p)
        for f in fields:
            if p.get(f) not in (None, ""):
                items = [o for o in items if _fmt(o.get(f)) == p[f]]
        return s.page(extra(items, p) if extra else items, p)

    return handler


def retriever(object_type: str) -> Handler:
    return lambda s, p, object_id: s.get(object_id, object_type)


def _by_sub_status(items: list[Obj], p: Obj) -> list[Obj]:
    """Stripe hides canceled subscriptions unless ``status=canceled`` or ``status=all``."""
    status = p.get("status") or "not_canceled"
    if status == "all":
        return items
    if status == "not_canceled":
        return [o for o in items if o["status"] not in ("canceled", "incomplete_expired")]
    return [o for o in items if o["status"] == status]


def _subscription_filters(items: list[Obj], p: Obj) -> list[Obj]:
    items = _by_sub_status(items, p)
    if price := p.get("price"):
        items = [o for o in items if any(i["price"]["id"] == price for i in o["items"]["data"])]
    return items


def _by_invoice_subscription(items: list[Obj], p: Obj) -> list[Obj]:
    """Invoices name their subscription under ``parent.subscription_details`` now."""
    if not (sub := p.get("subscription")):
        return items
    details = [(o, (o["parent"] or {}).get("subscription_details") or {}) for o in items]
    return [o for o, d in details if d.get("subscription") == sub]


def _by_event_types(items: list[Obj], p: Obj) -> list[Obj]:
    types = p.get("types")
    return [o for o in items if o["type"] in types] if isinstance(types, list) else items


def _items_of_subscription(s: Store, p: Obj) -> Obj:
    sub = s.get(resources.get_str(p, "subscription", required=True), "subscription", "subscription")
    return s.page(list(sub["items"]["data"]), p)


@dataclass(frozen=True)
class Route:
    """One endpoint: its handler, the pinned version's parameter type (``params``, read from
    ``stripe.params``), the parameters the simulator models, and what it answers (for
    ``expand[]``: an object type, ``list:<type>`` or ``search_result:<type>``)."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params: type
    models: frozenset[str]
    answers: str


ID = r"([^/]+)"
_LIST = ("limit", "starting_after", "ending_before", "created")
# Fields Stripe returns only when expanded (includable), by object type.
INCLUDABLE = {
    "customer": {"sources": account.include_sources},
    "invoice": {"payments": billing.include_payments},
    "charge": {"refunds": billing.include_refunds},
    "checkout.session": {"line_items": resources.checkout_includes_line_items},
}
_CUSTOMER_FIELDS = ("email", "name", "description", "phone", "metadata", "invoice_settings")
_ROUTES: list[tuple[str, str, Handler, str, tuple[str, ...], str]] = [
    (
        "GET",
        "customers",
        lister("customer", "email"),
        "CustomerListParams",
        ("email",),
        "list:customer",
    ),
    (
        "POST",
        "customers",
        resources.create_customer,
        "CustomerCreateParams",
        _CUSTOMER_FIELDS,
        "customer",
    ),
    (
        "GET",
        "customers/search",
        resources.search_customers,
        "CustomerSearchParams",
        ("query", "limit", "page"),
        "search_result:customer",
    ),
    (
        "GET",
        f"customers/{ID}",
        resources.retrieve_customer,
        "CustomerRetrieveParams",
        (),
        "customer",
    ),
    (
        "POST",
        f"customers/{ID}",
        resources.update_customer,
        "CustomerUpdateParams",
        _CUSTOMER_FIELDS,
        "customer",
    ),
    (
        "DELETE",
        f"customers/{ID}",
        resources.delete_customer,
        "CustomerDeleteParams",
        (),
        "customer",
    ),
    (
        "GET",
        f"customers/{ID}/sources",
        account.list_customer_sources,
        "CustomerPaymentSourceListParams",
        ("object",),
        "list:card",
    ),
    ("GET", "account", account.retrieve_account, "AccountRetrieveCurrentParams", (), "account"),
    ("GET", "accounts", account.list_accounts, "AccountListParams", (), "list:account"),
    (
        "GET",
        "products",
        lister("product", "active"),
        "ProductListParams",
        ("active",),
        "list:product",
    ),
    (
        "POST",
        "products",
        resources.create_product,
        "ProductCreateParams",
        ("id", "name", "description", "active", "metadata"),
        "product",
    ),
    ("GET", f"products/{ID}", retriever("product"), "ProductRetrieveParams", (), "product"),
    (
        "GET",
        f"products/{ID}/features",
        account.list_product_features,
        "ProductFeatureListParams",
        (),
        "list:product_feature",
    ),
    (
        "GET",
        "prices",
        lister("price", "active", "product", "type", extra=resources.by_lookup_keys),
        "PriceListParams",
        ("active", "product", "type", "lookup_keys"),
        "list:price",
    ),
    (
        "POST",
        "prices",
        resources.create_price,
        "PriceCreateParams",
        (
            "currency",
            "unit_amount",
            "product",
            "product_data",
            "recurring",
            "active",
            "nickname",
            "lookup_key",
            "transfer_lookup_key",
            "metadata",
        ),
        "price",
    ),
    ("GET", f"prices/{ID}", retriever("price"), "PriceRetrieveParams", (), "price"),
    (
        "GET",
        "billing/meters",
        lister("billing.meter", "status"),
        "billing.MeterListParams",
        ("status",),
        "list:billing.meter",
    ),
    (
        "POST",
        "billing/meters",
        resources.create_meter,
        "billing.MeterCreateParams",
        ("display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings"),
        "billing.meter",
    ),
    (
        "GET",
        f"billing/meters/{ID}",
        retriever("billing.meter"),
        "billing.MeterRetrieveParams",
        (),
        "billing.meter",
    ),
    (
        "POST",
        "billing/meter_events",
        resources.create_meter_event,
        "billing.MeterEventCreateParams",
        ("event_name", "payload", "identifier", "timestamp"),
        "billing.meter_event",
    ),
    (
        "GET",
        "checkout/sessions",
        lister("checkout.session", "customer", "subscription", "status"),
        "checkout.SessionListParams",
        ("customer", "subscription", "status"),
        "list:checkout.session",
    ),
    (
        "POST",
        "checkout/sessions",
        resources.create_checkout_session,
        "checkout.SessionCreateParams",
        (
            "mode",
            "customer",
            "customer_email",
            "line_items",
            "success_url",
            "cancel_url",
            "client_reference_id",
            "metadata",
            "subscription_data",
        ),
        "checkout.session",
    ),
    (
        "GET",
        f"checkout/sessions/{ID}",
        retriever("checkout.session"),
        "checkout.SessionRetrieveParams",
        (),
        "checkout.session",
    ),
    (
        "POST",
        f"checkout/sessions/{ID}/expire",
        resources.expire_checkout_session,
        "checkout.SessionExpireParams",
        (),
        "checkout.session",
    ),
    (
        "GET",
        f"checkout/sessions/{ID}/line_items",
        resources.checkout_line_items,
        "checkout.SessionListLineItemsParams",
        (),
        "list:item",
    ),
    (
        "GET",
        "subscriptions",
        lister("subscription", "customer", extra=_subscription_filters),
        "SubscriptionListParams",
        ("customer", "status", "price"),
        "list:subscription",
    ),
    (
        "POST",
        "subscriptions",
        recurring.create_subscription,
        "SubscriptionCreateParams",
        (
            "customer",
            "items",
            "trial_end",
            "trial_period_days",
            "default_payment_method",
            "metadata",
        ),
        "subscription",
    ),
    (
        "GET",
        f"subscriptions/{ID}",
        retriever("subscription"),
        "SubscriptionRetrieveParams",
        (),
        "subscription",
    ),
    (
        "POST",
        f"subscriptions/{ID}",
        recurring.update_subscription,
        "SubscriptionUpdateParams",
        (
            "items",
            "proration_behavior",
            "cancel_at_period_end",
            "cancellation_details",
            "default_payment_method",
            "metadata",
        ),
        "subscription",
    ),
    (
        "DELETE",
        f"subscriptions/{ID}",
        recurring.cancel_subscription,
        "SubscriptionCancelParams",
        ("prorate", "invoice_now", "cancellation_details"),
        "subscription",
    ),
    (
        "GET",
        "subscription_items",
        _items_of_subscription,
        "SubscriptionItemListParams",
        ("subscription",),
        "list:subscription_item",
    ),
    (
        "GET",
        f"subscription_items/{ID}",
        retriever("subscription_item"),
        "SubscriptionItemRetrieveParams",
        (),
        "subscription_item",
    ),
    (
        "GET",
        "invoices",
        lister("invoice", "customer", "status", extra=_by_invoice_subscription),
        "InvoiceListParams",
        ("customer", "subscription", "status"),
        "list:invoice",
    ),
    ("GET", f"invoices/{ID}", retriever("invoice"), "InvoiceRetrieveParams", (), "invoice"),
    (
        "GET",
        f"invoices/{ID}/lines",
        billing.list_invoice_lines,
        "InvoiceListLinesParams",
        (),
        "list:line_item",
    ),
    (
        "GET",
        "invoice_payments",
        billing.list_invoice_payments,
        "InvoicePaymentListParams",
        ("invoice", "status", "payment"),
        "list:invoice_payment",
    ),
    (
        "GET",
        f"invoice_payments/{ID}",
        retriever("invoice_payment"),
        "InvoicePaymentRetrieveParams",
        (),
        "invoice_payment",
    ),
    (
        "GET",
        "charges",
        lister("charge", "customer", "payment_intent"),
        "ChargeListParams",
        ("customer", "payment_intent"),
        "list:charge",
    ),
    ("GET", f"charges/{ID}", retriever("charge"), "ChargeRetrieveParams", (), "charge"),
    (
        "GET",
        "payment_intents",
        lister("payment_intent", "customer"),
        "PaymentIntentListParams",
        ("customer",),
        "list:payment_intent",
    ),
    (
        "GET",
        f"payment_intents/{ID}",
        retriever("payment_intent"),
        "PaymentIntentRetrieveParams",
        (),
        "payment_intent",
    ),
    (
        "GET",
        f"payment_methods/{ID}",
        retriever("payment_method"),
        "PaymentMethodRetrieveParams",
        (),
        "payment_method",
    ),
    (
        "GET",
        "refunds",
        lister("refund", "charge", "payment_intent"),
        "RefundListParams",
        ("charge", "payment_intent"),
        "list:refund",
    ),
    (
        "POST",
        "refunds",
        billing.create_refund,
        "RefundCreateParams",
        ("charge", "payment_intent", "amount", "reason", "metadata"),
        "refund",
    ),
    ("GET", f"refunds/{ID}", retriever("refund"), "RefundRetrieveParams", (), "refund"),
    (
        "GET",
        "events",
        lister("event", "type", extra=_by_event_types),
        "EventListParams",
        ("type", "types"),
        "list:event",
    ),
    ("GET", f"events/{ID}", retriever("event"), "EventRetrieveParams", (), "event"),
]
ROUTES: list[Route] = [
    Route(
        method,
        re.compile(f"/v1/{path}"),
        handler,
        schema.params_class(params),
        frozenset((*models, "expand", *(_LIST if answers.startswith("list:") else ()))),
        answers,
    )
    for method, path, handler, params, models, answers in _ROUTES
]
INCLUDABLE_NAMES = {kind: set(fields) for kind, fields in INCLUDABLE.items()}
