"""Writes for customers. Signup, which spans apps, is lifecycle.signup."""

from __future__ import annotations

from http import HTTPStatus

from django.contrib.auth.hashers import make_password

from core.errors import ApplicationError
from customers.models import Customer


def customer_email_normalize(email: str) -> str:
    return email.strip().lower()


def customer_refuse_duplicate_email(email: str) -> None:
    raise ApplicationError(
        f"A customer with email {email} already exists.",
        error="Customer already exists",
        status_code=HTTPStatus.CONFLICT,
        details={"email": email},
    )


def customer_email_check_free(*, email: str) -> None:
    """409 if a customer has this email (compared case-insensitively)."""
    if Customer.objects.filter(email__iexact=email).exists():
        customer_refuse_duplicate_email(email)


def customer_create(
    *, email: str, company_name: str = "", full_name: str = "", password: str | None = None
) -> Customer:
    """The customer row alone; its password (if any) stored as Django's hash."""
    return Customer.objects.create(
        email=customer_email_normalize(email),
        company_name=company_name,
        full_name=full_name,
        password=make_password(password) if password else "",
    )
