"""The objects the simulator returns, in the shape of the pinned API version (2026-08-26.dahlia).

Every field that version always returns is written out here, null where it has no value, and
none that it removed (an invoice has no ``charge``, ``payment_intent``, ``paid`` or
``subscription``; a subscription's periods are on its items). Fields Stripe returns only when
asked (``invoice.payments``, ``charge.refunds``, ``checkout.session.line_items``) are kept under
``_``-prefixed keys or computed, and added by ``expand[]``. The contract test checks each shape
against the object classes of the installed ``stripe`` package.
"""

from __future__ import annotations

from .billing import (
    checkout_line,
    checkout_session,
    invoice,
    invoice_line,
    line_items_list,
    subscription,
    subscription_item,
)
from .catalogue import customer, customer_details, meter, plan, price, product, recurring
from .payments import charge, invoice_payment, outcome, payment_intent, payment_method, refund

__all__ = [
    "charge",
    "checkout_line",
    "checkout_session",
    "customer",
    "customer_details",
    "invoice",
    "invoice_line",
    "invoice_payment",
    "line_items_list",
    "meter",
    "outcome",
    "payment_intent",
    "payment_method",
    "plan",
    "price",
    "product",
    "recurring",
    "refund",
    "subscription",
    "subscription_item",
]
