"""Writes for customers and their credentials."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status

from config.api import ApplicationError
from customers.audit import audit_record
from customers.models import Customer, CustomerApiKey, HashedKey, StaffToken

_ALPHABET = string.ascii_letters + string.digits
# Refreshing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made credential: `raw_key` exists only here, never in the database."""

    record: HashedKey
    raw_key: str


def _hashed_key_create(*, model: type[HashedKey], kind: str, name: str, **owner) -> IssuedKey:
    prefix = f"{kind}_{_random(10)}"
    raw_key = f"{prefix}_{_random(32)}"
    record = model.objects.create(prefix=prefix, key_hash=_hash(raw_key), name=name, **owner)
    return IssuedKey(record=record, raw_key=raw_key)


def hashed_key_lookup(*, model: type[HashedKey], raw_key: str) -> HashedKey | None:
    """Find the live key for a presented secret, comparing hashes in constant time."""
    prefix, sep, _ = raw_key.rpartition("_")
    if not sep or len(prefix) > 16:
        return None
    related = "customer" if model is CustomerApiKey else "user"
    record = (
        model.objects.select_related(related).filter(prefix=prefix, revoked_at__isnull=True).first()
    )
    if record is None or not hmac.compare_digest(record.key_hash, _hash(raw_key)):
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_RESOLUTION:
        model.objects.filter(pk=record.pk).update(last_used_at=now)
    return record


def api_key_issue(*, customer, name: str = "") -> IssuedKey:
    return _hashed_key_create(model=CustomerApiKey, kind="ik", name=name, customer=customer)


def api_key_revoke(*, api_key: CustomerApiKey) -> CustomerApiKey:
    CustomerApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_key.refresh_from_db()
    return api_key


@transaction.atomic
def api_key_rotate(*, customer, name: str = "") -> IssuedKey:
    """Revoke every live key of the customer and issue one new key."""
    CustomerApiKey.objects.filter(customer=customer, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return api_key_issue(customer=customer, name=name or "rotated")


def staff_token_issue(*, user, name: str = "") -> IssuedKey:
    return _hashed_key_create(model=StaffToken, kind="st", name=name, user=user)


@dataclass(frozen=True)
class SignupResult:
    customer: Customer
    subscription: object
    api_key: IssuedKey
    license: object
    deployment: object


def _refuse_duplicate_email(email: str) -> None:
    raise ApplicationError(
        f"A customer with email {email} already exists.",
        error="Customer already exists",
        status_code=status.HTTP_409_CONFLICT,
        details={"email": email},
    )


def customer_signup(
    *,
    email: str,
    company_name: str = "",
    full_name: str = "",
    password: str | None = None,
    trial_days: int | None = None,
    actor: str = "signup",
) -> SignupResult:
    """Create a customer with a trial, an API key, a signed license and a queued deployment.

    All rows are written in one transaction: a failure anywhere leaves no customer.
    A duplicate email (compared case-insensitively) is refused with 409.
    """
    from deployments.services import deployment_queue
    from licensing.services import license_get_or_issue
    from subscriptions.services import subscription_start_trial

    email = email.strip().lower()
    if Customer.objects.filter(email__iexact=email).exists():
        _refuse_duplicate_email(email)
    try:
        with transaction.atomic():
            customer = Customer.objects.create(
                email=email,
                company_name=company_name,
                full_name=full_name,
                password=make_password(password) if password else "",
            )
            subscription = subscription_start_trial(customer=customer, trial_days=trial_days)
            api_key = api_key_issue(customer=customer, name="signup")
            issued = license_get_or_issue(customer=customer)
            deployment = deployment_queue(customer=customer)
            audit_record(
                action="customer.created",
                customer=customer,
                actor=actor,
                plan=subscription.plan,
                status=subscription.status,
            )
    except IntegrityError:
        # Two signups with one email raced past the check above; the constraint decided.
        if Customer.objects.filter(email__iexact=email).exists():
            _refuse_duplicate_email(email)
        raise
    _enqueue_stripe_customer(customer)
    return SignupResult(
        customer=customer,
        subscription=subscription,
        api_key=api_key,
        license=issued,
        deployment=deployment,
    )


def _enqueue_stripe_customer(customer: Customer) -> None:
    """Create the Stripe customer off the request path; a broker outage is caught up by the
    periodic sweep (the customer's blank stripe_customer_id is the record of what is owed)."""
    import logging

    from subscriptions import stripe_api
    from subscriptions.tasks import customer_stripe_sync_task

    if not stripe_api.is_configured():
        return
    try:
        customer_stripe_sync_task.delay(customer.pk)
    except Exception:  # a broker outage must not fail a signup that is already committed
        logging.getLogger(__name__).warning(
            "Could not enqueue the Stripe customer of %s; the sweep will", customer.customer_id
        )
