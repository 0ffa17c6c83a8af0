"""Reads of customers, always scoped to who is asking."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from customers.auth import is_customer
from customers.models import Customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.select_related("subscription").order_by("-created_at", "-id")


def customer_get_for(*, user, customer_id: str) -> Customer:
    """The customer `customer_id` if `user` may see it, else 404.

    Staff see every customer. A customer API key sees only its own customer: asking
    for another answers 404, exactly as for a customer that does not exist, so a key
    cannot even learn which ids exist.
    """
    if len(customer_id) > 40 or not customer_id.isprintable():
        raise NotFound(f"Customer {customer_id!r} not found.")
    queryset = Customer.objects.select_related("subscription")
    if is_customer(user):
        if user.customer.customer_id != customer_id:
            raise NotFound(f"Customer {customer_id} not found.")
        queryset = queryset.filter(pk=user.customer.pk)
    customer = queryset.filter(customer_id=customer_id).first()
    if customer is None:
        raise NotFound(f"Customer {customer_id} not found.")
    return customer
