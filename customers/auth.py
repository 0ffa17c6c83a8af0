"""The three principals of the API and the permissions that tell them apart.

- staff: a Django staff session (admin, browsable API), the ADMIN_API_TOKEN, or a
  per-staff token, the last two as `Authorization: Bearer <token>`;
- customer instance: `X-API-Key: <key>`, bound to one customer;
- Stripe: no principal here; the webhook view checks Stripe's signature itself.

No credentials gives 401; credentials of the wrong kind give 403. Also here, because they
are about principals: how each is named in the audit log (`actor_of`) and which customers
each may see (`customer_get_for`).
"""

from __future__ import annotations

import hmac
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from core import data_version
from customers import credentials
from customers.models import Customer, CustomerApiKey, StaffToken


class AdminTokenUser:
    """Who the shared ADMIN_API_TOKEN acts as: staff, but no row in the user table."""

    is_authenticated = True
    is_anonymous = False
    is_staff = True
    is_superuser = False
    is_active = True
    pk = None
    id = None
    username = "admin-api-token"

    def __str__(self) -> str:
        return self.username


class CustomerPrincipal:
    """A customer instance authenticated by its API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, customer: Customer, api_key: CustomerApiKey) -> None:
        self.customer = customer
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class StaffTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("Empty bearer token.")
        admin_token = settings.ADMIN_API_TOKEN
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            return AdminTokenUser(), None
        staff_token = credentials.hashed_key_lookup(model=StaffToken, raw_key=token)
        if staff_token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked bearer token.")
        user = staff_token.user
        if not (user.is_active and user.is_staff):
            raise exceptions.AuthenticationFailed("This token's user is not active staff.")
        return user, staff_token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="billing"'


# What a customer key's requests read of its customer, loaded with the key in one query
# (key, customer, subscription, revocation): `customer_get_for` and the license fetch then
# need no query of their own, and a revocation still counts at once (read in the request).
CUSTOMER_RELATED = ("customer__subscription", "customer__license_revocation")


# Keys held at once per process; past it the held keys are dropped (thousands of instances
# each hold one key, so a busy process holds them all).
_HELD_KEYS_MAX = 20_000


@dataclass(frozen=True)
class _Held:
    version: str
    until: float  # time.monotonic()
    key: bytes  # the pickled CustomerApiKey with its customer, subscription and revocation
    customer_pk: int  # a key's customer never changes


_held: dict[str, _Held] = {}
_held_lock = threading.Lock()


def customer_key_lookup(
    raw_key: str, *, count_along: Callable[[Any, int], Callable] | None = None
) -> CustomerApiKey | None:
    """The live key for a presented secret, with its customer, subscription and revocation.

    Held per process, by the secret's digest, while the shared data version it was read
    under is current (core.data_version: any write to those rows changes it, so a
    revocation refuses the very next request) and for at most API_KEY_CACHE_SECONDS. Each
    request gets its own copy (unpickled), so nothing a request changes reaches another.
    Unknown secrets are not held: each one is looked up.

    `count_along(pipe, customer_pk)` adds the request's rate-limit counting to the round
    trip that reads the version, for a key held here (its customer is known before the
    check: a key never changes customer).
    """
    seconds = settings.API_KEY_CACHE_SECONDS
    digest = credentials.key_digest(raw_key)
    held = _held.get(digest)
    along = None
    if held is not None and count_along is not None:
        customer_pk = held.customer_pk
        along = lambda pipe: count_along(pipe, customer_pk)  # noqa: E731
    version = data_version.current(along=along) if seconds else None
    now = time.monotonic()
    if version is not None and held is not None and held.version == version and held.until > now:
        api_key = pickle.loads(held.key)  # noqa: S301 - pickled by this process, below
        if credentials.last_used_refresh(api_key):  # not a change of the data version
            _hold(digest, _Held(version, held.until, pickle.dumps(api_key), held.customer_pk))
        return api_key
    api_key = credentials.hashed_key_lookup(
        model=CustomerApiKey, raw_key=raw_key, related=CUSTOMER_RELATED
    )
    if api_key is None:  # revoked (or gone): its requests are no longer counted along
        with _held_lock:
            _held.pop(digest, None)
    elif version is not None:
        _hold(digest, _Held(version, now + seconds, pickle.dumps(api_key), api_key.customer_id))
    return api_key


def _hold(digest: str, held: _Held) -> None:
    with _held_lock:
        if len(_held) >= _HELD_KEYS_MAX and digest not in _held:
            _held.clear()
        _held[digest] = held


def _throttles_along(request) -> Callable[[Any, int], Callable] | None:
    """The view's per-customer rate limits that can count in the held key's round trip
    (a throttle with `count_along`, config/api.py), as one `count_along` for the lookup. The
    throttles are made only if the lookup uses it (a key held here)."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    if view is None:
        return None

    def count_along(pipe, customer_pk: int):
        throttles = [t for t in view.get_throttles() if hasattr(t, "count_along")]
        keeps = [t.count_along(request, pipe, customer_pk) for t in throttles]

        def answer(answers: list) -> None:
            remaining = iter(answers)
            for keep in keeps:
                keep(remaining)

        return answer

    return count_along


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw_key = request.META.get(self.header)
        if raw_key is None:
            return None
        api_key = customer_key_lookup(raw_key.strip(), count_along=_throttles_along(request))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return CustomerPrincipal(api_key.customer, api_key), api_key


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """Django session of a staff user (CSRF enforced); other sessions are ignored."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result


def is_customer(user) -> bool:
    return isinstance(user, CustomerPrincipal)


def actor_of(user) -> str:
    """How a request's principal is named in the audit log."""
    if isinstance(user, CustomerPrincipal):
        return f"api-key:{user.api_key.prefix}"
    if isinstance(user, AdminTokenUser):
        return "staff:admin-api-token"
    if getattr(user, "is_authenticated", False):
        return f"staff:{user.get_username()}"
    return "anonymous"


def customer_get_for(*, user, customer_id: str) -> Customer:
    """The customer `customer_id` if `user` may see it, else 404.

    Staff see every customer. A customer API key sees only its own customer: asking
    for another answers 404, exactly as for a customer that does not exist, so a key
    cannot even learn which ids exist.
    """
    if len(customer_id) > 40 or not customer_id.isprintable():
        raise exceptions.NotFound(f"Customer {customer_id!r} not found.")
    if is_customer(user):
        if user.customer.customer_id != customer_id:
            raise exceptions.NotFound(f"Customer {customer_id} not found.")
        return user.customer  # read with the key in this request (CUSTOMER_RELATED)
    customer = (
        Customer.objects.select_related("subscription").filter(customer_id=customer_id).first()
    )
    if customer is None:
        raise exceptions.NotFound(f"Customer {customer_id} not found.")
    return customer


class IsStaff(permissions.BasePermission):
    message = "This endpoint is for staff only."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class IsCustomerInstance(permissions.BasePermission):
    """A customer's API key; a deactivated customer may still read but not write."""

    message = "This endpoint takes a customer API key (X-API-Key)."

    def has_permission(self, request, view) -> bool:
        if not is_customer(request.user):
            return False
        if not request.user.customer.is_active and request.method not in permissions.SAFE_METHODS:
            self.message = "This customer is deactivated; its API key can no longer write."
            return False
        return True


class IsStaffOrCustomerInstance(permissions.BasePermission):
    message = "This endpoint takes staff credentials or a customer API key."

    def has_permission(self, request, view) -> bool:
        if IsStaff().has_permission(request, view):
            return True
        customer_check = IsCustomerInstance()
        allowed = customer_check.has_permission(request, view)
        if not allowed and is_customer(request.user):
            self.message = customer_check.message
        return allowed
