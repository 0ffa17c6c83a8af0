"""Reads of customers. Scoping by who is asking is customers.auth.customer_get_for."""

from __future__ import annotations

from django.db.models import QuerySet

from customers.models import Customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.select_related("subscription").order_by("-created_at", "-id")
