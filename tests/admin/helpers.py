"""Helpers of the back-office tests: the operation pages' URLs and what they answered."""

from __future__ import annotations

from django.contrib.messages import get_messages

from customers.models import Customer


def operation_url(model: str, pk: int, slug: str) -> str:
    """`model` as "app/model", e.g. "customers/customer"."""
    return f"/admin/{model}/{pk}/operation/{slug}/"


def customer_url(customer: Customer) -> str:
    return f"/admin/customers/customer/{customer.pk}/change/"


def messages_of(response) -> list[str]:
    """The message bar of a response (followed redirects included)."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def page_messages(response) -> str:
    """The message bar as rendered on the page."""
    content = response.content.decode()
    start = content.find('<ul class="messagelist">')
    return content[start : content.find("</ul>", start)] if start >= 0 else ""
