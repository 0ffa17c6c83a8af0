"""What dj-stripe's sync reads besides the billing objects: the simulator's own account, its
(no) connected accounts, a customer's (no) legacy payment sources, a product's (no) features."""

from __future__ import annotations

from .shapes.account import account
from .state import Obj, Store, list_object


def retrieve_account(s: Store, p: Obj) -> Obj:
    """``GET /v1/account``: the account the key belongs to."""
    return account()


def list_accounts(s: Store, p: Obj) -> Obj:
    """``GET /v1/accounts``: connected accounts (Connect), of which the simulator has none."""
    return s.page([], p, "/v1/accounts")


def list_customer_sources(s: Store, p: Obj, customer_id: str) -> Obj:
    """``GET /v1/customers/{id}/sources``: legacy sources (cards are PaymentMethods here)."""
    s.get(customer_id, "customer", "customer")
    return s.page([], p, f"/v1/customers/{customer_id}/sources")


def include_sources(s: Store, customer: Obj) -> Obj:
    """``customer.sources``, returned only when expanded: always empty here."""
    return list_object([], f"/v1/customers/{customer['id']}/sources")


def list_product_features(s: Store, p: Obj, product_id: str) -> Obj:
    """``GET /v1/products/{id}/features``: entitlement features, which the simulator has none of."""
    s.get(product_id, "product", "product")
    return s.page([], p, f"/v1/products/{product_id}/features")
