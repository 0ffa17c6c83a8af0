"""Issuing, re-issuing and revoking licenses, and the signed revocation list."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from core import data_version
from core.audit import audit_record
from core.errors import ApplicationError
from core.plans import PLANS, entitled_plan
from core.timestamps import iso
from customers.models import Customer
from licensing import signing
from licensing.models import LicenseHistory, LicenseRevocation
from licensing.verify import LICENSE_TYP, REVOCATIONS_TYP

ISSUE_ACTIONS = (
    LicenseHistory.Action.GENERATED,
    LicenseHistory.Action.UPGRADED,
    LicenseHistory.Action.DOWNGRADED,
)
REVOCATION_LIST_TTL = timedelta(hours=1)
# Revocations made by workflows, lifted again by them (resubscription, reactivation).
REVOKED_BY_CANCELLATION = "subscription-canceled"
REVOKED_BY_DEACTIVATION = "deactivation"
AUTOMATIC_REVOKERS = (REVOKED_BY_CANCELLATION, REVOKED_BY_DEACTIVATION)
_REVOCATIONS_CACHE_KEY = "licensing:revocations"
# A cached license is re-signed this long before it expires, so instances never get a stale one.
_REFRESH_MARGIN = timedelta(days=1)


def _cache_key(customer: Customer) -> str:
    return f"licensing:license:{customer.customer_id}"


@dataclass(frozen=True)
class IssuedLicense:
    token: str
    claims: dict  # shared by the requests that answer it: read only


# Per process, the license last answered for each customer (by pk): its data version, its
# contents' fingerprint and the license. Answered again while both match and it is not due
# for re-signing, without asking the cache. A re-signing (contents, key, revocation, expiry)
# changes the fingerprint, the version or the due date, so it is never hidden; a license
# another process signed at the same moment for the same contents may be answered instead
# of this one's: both are valid and in the history.
_answered: dict[int, tuple[str, str, IssuedLicense]] = {}
_ANSWERED_MAX = 20_000


def license_claims_base(customer: Customer) -> dict:
    """Everything in the license that depends on the customer's state (no iat/exp/jti).

    Expiry rule: the end of the trial (while trialing) or of the paid period, plus
    LICENSE_GRACE_DAYS. An instance whose customer stops paying therefore loses its
    license on its own, even offline, at most a grace period after the paid time.
    """
    subscription = customer.subscription
    plan = entitled_plan(plan=subscription.plan, status=subscription.status)
    trialing = subscription.status == subscription.Status.TRIALING
    period_end = subscription.trial_ends_at if trialing else subscription.current_period_end
    trial: dict = {"isTrialMode": trialing}
    if trialing:
        trial["trialEndsAt"] = iso(subscription.trial_ends_at)
    return {
        "customerId": customer.customer_id,
        "customerName": customer.company_name or customer.full_name,
        "plan": plan.name,
        "features": plan.features_dict(),
        "limits": plan.limits_dict(),
        "trial": trial,
        "subscription": {
            "status": subscription.status,
            "currentPeriodEndsAt": iso(period_end),
        },
        # None without a period end: then the license runs from its signing (below), and
        # the fingerprint must not change with the clock (it would re-sign every fetch).
        "_periodEnd": period_end.timestamp() if period_end else None,
    }


def _history_action(customer: Customer, plan_name: str) -> tuple[str, str | None]:
    last = (
        LicenseHistory.objects.filter(customer=customer, action__in=ISSUE_ACTIONS)
        .only("plan")
        .first()
    )
    if last is None or last.plan == plan_name:
        return LicenseHistory.Action.GENERATED, last.plan if last else None
    old_rank = PLANS[last.plan].rank if last.plan in PLANS else -1
    if PLANS[plan_name].rank > old_rank:
        return LicenseHistory.Action.UPGRADED, last.plan
    return LicenseHistory.Action.DOWNGRADED, last.plan


def _revocation_relation() -> Any:
    """Customer.license_revocation's relation: tells whether it was loaded on an instance."""
    return Customer._meta.get_field("license_revocation")


def _revocation_of(customer: Customer) -> LicenseRevocation | None:
    """The customer's revocation: as loaded with the customer in this request when it was
    (select_related, e.g. with the API key), else read now. Never from a cache that could
    outlive a revocation."""
    if _revocation_relation().is_cached(customer):
        try:
            return customer.license_revocation
        except LicenseRevocation.DoesNotExist:
            return None
    return LicenseRevocation.objects.filter(customer=customer).first()


def _refuse_if_revoked(customer: Customer) -> None:
    revocation = _revocation_of(customer)
    if revocation is not None:
        raise ApplicationError(
            f"The license of {customer.customer_id} was revoked at {iso(revocation.revoked_at)}"
            + (f": {revocation.reason}" if revocation.reason else "."),
            error="License revoked",
            status_code=status.HTTP_403_FORBIDDEN,
            details={"customerId": customer.customer_id, "revokedAt": iso(revocation.revoked_at)},
        )


def license_get_or_issue(*, customer: Customer, reason: str = "") -> IssuedLicense:
    """The customer's current license, signed anew only when its contents change.

    A license is re-signed when the plan, status, period, name or signing key changes,
    or when it is within a day of expiring; otherwise the cached token is returned.
    Every signing writes a history row holding the token's SHA-256, never the token.
    """
    _refuse_if_revoked(customer)
    base = license_claims_base(customer)
    period_end = base.pop("_periodEnd")
    kid = signing.signing_key().kid
    fingerprint = hashlib.sha256(
        json.dumps([base, kid, period_end], sort_keys=True).encode()
    ).hexdigest()
    now = timezone.now().timestamp()
    version = data_version.current()
    answered = _answered.get(customer.pk) if version else None
    if answered and answered[:2] == (version, fingerprint) and not _due(answered[2].claims, now):
        return answered[2]
    cached = cache.get(_cache_key(customer))
    if cached and cached["fingerprint"] == fingerprint and not _due(cached["claims"], now):
        issued = IssuedLicense(token=cached["token"], claims=cached["claims"])
    else:
        issued = _sign_and_record(
            customer=customer,
            base=base,
            period_end=period_end,
            fingerprint=fingerprint,
            reason=reason,
        )
    if version:
        if len(_answered) >= _ANSWERED_MAX:
            _answered.clear()
        _answered[customer.pk] = (version, fingerprint, issued)
    return issued


def _due(claims: dict, now: float) -> bool:
    """Whether a license is to be signed anew: within the refresh margin of its expiry."""
    return claims["exp"] - _REFRESH_MARGIN.total_seconds() <= now


def _sign_and_record(
    *, customer: Customer, base: dict, period_end: float | None, fingerprint: str, reason: str
) -> IssuedLicense:
    now = timezone.now()
    iat = int(now.timestamp())
    end = period_end if period_end is not None else now.timestamp()
    exp = int(end + timedelta(days=settings.LICENSE_GRACE_DAYS).total_seconds())
    claims = {
        "iss": settings.LICENSE_ISSUER,
        "aud": settings.LICENSE_AUDIENCE,
        "sub": customer.customer_id,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "exp": exp,
        **base,
        "issuedAt": iat,
        "expiresAt": exp,
    }
    token = signing.sign(claims, typ=LICENSE_TYP)
    action, old_plan = _history_action(customer, base["plan"])
    metadata = {"features": base["features"], "limits": base["limits"]}
    if old_plan is not None and old_plan != base["plan"]:
        metadata.update(oldPlan=old_plan, newPlan=base["plan"])
    if reason:
        metadata["reason"] = reason
    LicenseHistory.objects.create(
        customer=customer,
        action=action,
        plan=base["plan"],
        max_devices=base["features"]["maxDevices"],
        license_hash=hashlib.sha256(token.encode()).hexdigest(),
        jti=claims["jti"],
        kid=signing.signing_key().kid,
        expires_at=datetime.fromtimestamp(exp, tz=UTC),
        metadata=metadata,
    )
    ttl = max(60, int(exp - now.timestamp()))
    cache.set(
        _cache_key(customer),
        {"fingerprint": fingerprint, "token": token, "claims": claims},
        timeout=min(ttl, 86400),
    )
    return IssuedLicense(token=token, claims=claims)


@transaction.atomic
def license_revoke(*, customer: Customer, reason: str, actor: str) -> LicenseRevocation:
    """Refuse further fetches and list the customer's unexpired license ids as revoked.

    Idempotent: revoking a revoked license keeps the first revocation and writes nothing,
    except that a deliberate revocation (staff) replaces an automatic one (cancellation,
    deactivation), so a later payment or reactivation does not lift it.
    """
    revocation, created = LicenseRevocation.objects.select_for_update().get_or_create(
        customer=customer, defaults={"reason": reason, "revoked_by": actor}
    )
    if (
        not created
        and revocation.revoked_by in AUTOMATIC_REVOKERS
        and actor not in AUTOMATIC_REVOKERS
    ):
        revocation.reason, revocation.revoked_by = reason, actor
        revocation.save(update_fields=["reason", "revoked_by"])
        created = True
    if created:
        last = LicenseHistory.objects.filter(customer=customer, action__in=ISSUE_ACTIONS).first()
        LicenseHistory.objects.create(
            customer=customer,
            action=LicenseHistory.Action.REVOKED,
            plan=last.plan if last else customer.subscription.plan,
            max_devices=last.max_devices if last else 0,
            metadata={"reason": reason, "revokedBy": actor},
        )
        audit_record(action="license.revoked", customer=customer, actor=actor, reason=reason)
        transaction.on_commit(
            lambda: cache.delete_many([_cache_key(customer), _REVOCATIONS_CACHE_KEY])
        )
    return revocation


@transaction.atomic
def license_restore(*, customer: Customer, actor: str) -> bool:
    """Lift a revocation (reactivation); the next fetch signs a fresh license."""
    deleted, _ = LicenseRevocation.objects.filter(customer=customer).delete()
    if _revocation_relation().is_cached(customer):  # the customer no longer has one
        _revocation_relation().delete_cached_value(customer)
    if deleted:
        last = LicenseHistory.objects.filter(customer=customer, action__in=ISSUE_ACTIONS).first()
        LicenseHistory.objects.create(
            customer=customer,
            action=LicenseHistory.Action.RESTORED,
            plan=last.plan if last else customer.subscription.plan,
            max_devices=last.max_devices if last else 0,
            metadata={"restoredBy": actor},
        )
        audit_record(action="license.restored", customer=customer, actor=actor)
        transaction.on_commit(
            lambda: cache.delete_many([_cache_key(customer), _REVOCATIONS_CACHE_KEY])
        )
    return bool(deleted)


def revocation_list_token() -> str:
    """A short-lived signed JWT listing the jti of every revoked, still-unexpired license."""
    cached = cache.get(_REVOCATIONS_CACHE_KEY)
    if cached:
        return cached
    now = timezone.now()
    jtis = sorted(
        LicenseHistory.objects.filter(
            customer__license_revocation__isnull=False,
            action__in=ISSUE_ACTIONS,
            expires_at__gt=now,
        )
        .exclude(jti="")
        .values_list("jti", flat=True)
    )
    claims = {
        "iss": settings.LICENSE_ISSUER,
        "aud": settings.LICENSE_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + REVOCATION_LIST_TTL).timestamp()),
        "jti": uuid.uuid4().hex,
        "revoked": jtis,
    }
    token = signing.sign(claims, typ=REVOCATIONS_TYP)
    # Cached for a minute only: a revocation also clears it, so staleness stays short.
    cache.set(_REVOCATIONS_CACHE_KEY, token, timeout=60)
    return token
