"""Links in customer emails: signed, expiring and single-purpose, each opening a small page of
this service that says what will happen and does it on confirmation (lifecycle.views).

A link carries the customer id and its purpose, signed with SECRET_KEY (a changed character
fails the signature) and timestamped (older than EMAIL_LINK_MAX_AGE_DAYS is expired). Keeping
the subscription and asking for reactivation act once (the used token's hash is recorded);
choosing a plan only opens Stripe Checkout, so that link works until it expires.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction

from core.audit import audit_record
from core.errors import ApplicationError
from customers.models import Customer
from lifecycle.models import UsedEmailLink

SALT = "billing.email-link.v1"
KEEP, REACTIVATE, SUBSCRIBE = "keep", "reactivate", "subscribe"
PURPOSES = (KEEP, REACTIVATE, SUBSCRIBE)
SINGLE_USE = (KEEP, REACTIVATE)


@dataclass(frozen=True)
class EmailLink:
    customer: Customer
    purpose: str
    token: str


class LinkError(ApplicationError):
    """A link that cannot be used; `error` says which page to show."""


def link_token(*, customer: Customer, purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown link purpose {purpose!r}")
    payload = {"c": customer.customer_id, "p": purpose, "n": secrets.token_urlsafe(6)}
    return signing.dumps(payload, salt=SALT, compress=True)


def link_url(*, customer: Customer, purpose: str) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/links/{link_token(customer=customer, purpose=purpose)}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_read(token: str) -> EmailLink:
    """The link's customer and purpose; LinkError if tampered, expired, used or orphaned."""
    max_age = timedelta(days=settings.EMAIL_LINK_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise LinkError(
            "This link has expired. Ask us for a new one, or sign in to your account.",
            error="Link expired",
            status_code=HTTPStatus.GONE,
        ) from exc
    except signing.BadSignature as exc:
        raise LinkError(
            "This link is not valid: it may have been cut or changed on the way.",
            error="Invalid link",
            status_code=HTTPStatus.BAD_REQUEST,
        ) from exc
    if not isinstance(payload, dict) or payload.get("p") not in PURPOSES:
        raise LinkError("This link is not valid.", error="Invalid link")
    customer = (
        Customer.objects.select_related("subscription").filter(customer_id=payload.get("c")).first()
    )
    if customer is None:
        raise LinkError(
            "This account no longer exists.",
            error="Account not found",
            status_code=HTTPStatus.GONE,
        )
    used = UsedEmailLink.objects.filter(token_hash=_hash(token))
    if payload["p"] in SINGLE_USE and used.exists():
        raise LinkError(
            "This link has already been used.",
            error="Link already used",
            status_code=HTTPStatus.GONE,
        )
    return EmailLink(customer=customer, purpose=payload["p"], token=token)


@transaction.atomic
def link_use(link: EmailLink) -> None:
    """Record a single-use link as used (in the caller's transaction: if the action fails,
    the link stays usable); a second use loses the race and is refused."""
    if link.purpose not in SINGLE_USE:
        return
    try:
        with transaction.atomic():
            UsedEmailLink.objects.create(
                token_hash=_hash(link.token), purpose=link.purpose, customer=link.customer
            )
    except IntegrityError as exc:
        raise LinkError(
            "This link has already been used.",
            error="Link already used",
            status_code=HTTPStatus.GONE,
        ) from exc
    audit_record(
        action=f"email_link.{link.purpose}",
        customer=link.customer,
        actor=f"email-link:{link.customer.customer_id}",
    )
