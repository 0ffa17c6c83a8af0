"""Customers and the catalogue: products, prices (and their legacy Plan view), meters."""

from __future__ import annotations

import secrets
import string

from ..state import Obj, Store
from .common import base

_UPPER = string.ascii_uppercase


def customer(s: Store) -> Obj:
    obj = base(s, "customer", "cus_")
    obj.update(
        address=None,
        balance=0,
        business_name=None,
        currency=None,
        customer_account=None,
        default_source=None,
        delinquent=False,
        description=None,
        discount=None,
        email=None,
        individual_name=None,
        invoice_prefix="".join(secrets.choice(_UPPER) for _ in range(8)),
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        metadata={},
        name=None,
        next_invoice_sequence=1,
        phone=None,
        preferred_locales=[],
        shipping=None,
        tax_exempt="none",
        test_clock=None,
    )
    return obj


def product(s: Store, name: str, object_id: str | None) -> Obj:
    obj = base(s, "product", "prod_", object_id)
    obj.update(
        active=True,
        default_price=None,
        description=None,
        images=[],
        marketing_features=[],
        metadata={},
        name=name,
        package_dimensions=None,
        shippable=None,
        statement_descriptor=None,
        tax_code=None,
        type="service",
        unit_label=None,
        updated=s.now(),
        url=None,
    )
    return obj


def price(s: Store, *, product_id: str, currency: str, unit_amount: int) -> Obj:
    obj = base(s, "price", "price_")
    obj.update(
        active=True,
        billing_scheme="per_unit",
        currency=currency,
        custom_unit_amount=None,
        lookup_key=None,
        metadata={},
        nickname=None,
        product=product_id,
        recurring=None,
        tax_behavior="unspecified",
        tiers_mode=None,
        transform_quantity=None,
        type="one_time",
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
    )
    return obj


def recurring(interval: str, interval_count: int, usage_type: str, meter: str | None) -> Obj:
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": meter,
        "trial_period_days": None,
        "usage_type": usage_type,
    }


def plan(price_obj: Obj) -> Obj:
    """The legacy Plan view of a recurring price, still on every subscription item."""
    rec = price_obj["recurring"]
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": rec["interval"],
        "interval_count": rec["interval_count"],
        "livemode": False,
        "metadata": dict(price_obj["metadata"]),
        "meter": rec["meter"],
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": rec["usage_type"],
    }


def meter(s: Store) -> Obj:
    obj = base(s, "billing.meter", "mtr_")
    obj.update(
        event_time_window=None,
        status="active",
        status_transitions={"deactivated_at": None},
        updated=s.now(),
    )
    return obj


def customer_details(customer_obj: Obj) -> Obj:
    return {
        "address": None,
        "business_name": None,
        "email": customer_obj["email"],
        "individual_name": None,
        "name": customer_obj["name"],
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
