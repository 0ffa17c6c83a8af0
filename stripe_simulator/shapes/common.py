"""Pieces shared by the shapes: the object basics, addresses, billing details."""

from __future__ import annotations

from ..state import Obj, Store

ACCOUNT_COUNTRY = "US"
ACCOUNT_NAME = "Stripe Simulator"


def address() -> Obj:
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return dict.fromkeys(keys)


def billing_details(email: str | None = None, name: str | None = None) -> Obj:
    return {"address": address(), "email": email, "name": name, "phone": None, "tax_id": None}


def base(s: Store, object_type: str, prefix: str, object_id: str | None = None) -> Obj:
    return {
        "id": object_id or s.new_id(prefix),
        "object": object_type,
        "created": s.now(),
        "livemode": False,
    }
