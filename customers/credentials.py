"""Credentials: customer API keys and staff tokens, stored as a prefix plus a hash.

A secret is shown once, when it is made (`IssuedKey.raw_key`), and never stored; a lookup
finds the live record by its prefix and compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from customers.models import Customer, CustomerApiKey, HashedKey, StaffToken

_ALPHABET = string.ascii_letters + string.digits
# Refreshing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)

KeyModel = TypeVar("KeyModel", bound=HashedKey)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def key_digest(raw_key: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made credential: `raw_key` exists only here, never in the database."""

    record: HashedKey
    raw_key: str


def _hashed_key_create(*, model: type[HashedKey], kind: str, name: str, **owner) -> IssuedKey:
    prefix = f"{kind}_{_random(10)}"
    raw_key = f"{prefix}_{_random(32)}"
    record = model._default_manager.create(
        prefix=prefix, key_hash=key_digest(raw_key), name=name, **owner
    )
    return IssuedKey(record=record, raw_key=raw_key)


def hashed_key_lookup(
    *, model: type[KeyModel], raw_key: str, related: tuple[str, ...] = ()
) -> KeyModel | None:
    """Find the live key for a presented secret, comparing hashes in constant time.

    One query: the key joined to its owner and to whatever `related` names (the caller's
    rows of the owner that the request will read, so it need not query them again).
    """
    prefix, sep, _ = raw_key.rpartition("_")
    if not sep or len(prefix) > 16:
        return None
    owner = "customer" if model is CustomerApiKey else "user"
    record = (
        model._default_manager.select_related(owner, *related)
        .filter(prefix=prefix, revoked_at__isnull=True)
        .order_by()
        .first()
    )
    if record is None or not hmac.compare_digest(record.key_hash, key_digest(raw_key)):
        return None
    last_used_refresh(record)
    return record


def last_used_refresh(record: HashedKey) -> bool:
    """Note that the key was used, at most every few minutes; whether it wrote."""
    now = timezone.now()
    if record.last_used_at is not None and now - record.last_used_at <= _LAST_USED_RESOLUTION:
        return False
    type(record)._default_manager.filter(pk=record.pk).update(last_used_at=now)
    record.last_used_at = now
    return True


def _customer_lock(customer: Customer) -> None:
    """Hold the customer's row until the transaction ends: key issuance for one customer is
    serialized, so concurrent requests cannot pass the cap together."""
    Customer.objects.select_for_update().filter(pk=customer.pk).values_list("pk").first()


@transaction.atomic
def api_key_issue(*, customer: Customer, name: str = "") -> IssuedKey:
    """Issue one more key of the customer, refused (409) once it has
    MAX_API_KEYS_PER_CUSTOMER unrevoked keys: revoking one (or rotating) frees room."""
    _customer_lock(customer)
    cap = settings.MAX_API_KEYS_PER_CUSTOMER
    live = CustomerApiKey.objects.filter(customer=customer, revoked_at__isnull=True).count()
    if live >= cap:
        raise ApplicationError(
            f"{customer.customer_id} has {live} unrevoked API keys, the most allowed "
            f"({cap}). Revoke one (DELETE /api/customers/{customer.customer_id}/api-keys/"
            "<prefix>) or rotate them (POST .../api-keys/rotate) to issue another.",
            error="API key limit reached",
            status_code=HTTPStatus.CONFLICT,
            details={"max_api_keys": cap, "unrevoked_keys": live},
        )
    return _hashed_key_create(model=CustomerApiKey, kind="ik", name=name, customer=customer)


def api_key_revoke(*, api_key: CustomerApiKey) -> CustomerApiKey:
    CustomerApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_key.refresh_from_db()
    return api_key


@transaction.atomic
def api_key_rotate(*, customer: Customer, name: str = "") -> IssuedKey:
    """Revoke every live key of the customer and issue one new key (so it works at the
    cap too)."""
    _customer_lock(customer)
    CustomerApiKey.objects.filter(customer=customer, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return api_key_issue(customer=customer, name=name or "rotated")


def staff_token_issue(*, user, name: str = "") -> IssuedKey:
    return _hashed_key_create(model=StaffToken, kind="st", name=name, user=user)
