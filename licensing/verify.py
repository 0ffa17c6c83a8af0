"""Offline license verification for customer instances.

Standalone: needs only PyJWT and cryptography (no Django), so an instance can vendor
this one file. Usage:

    from licensing.verify import keys_from_jwks, effective_license, check_device_limit
    keys = keys_from_jwks(jwks_json)            # from /.well-known/jwks.json, cached on disk
    revoked = verify_revocation_list(rl_token, keys)  # optional, from /api/licenses/revocations
    lic = effective_license(os.environ.get("IOTISTIC_LICENSE_KEY"), keys, revoked_jtis=revoked,
                            first_started_at=instance_first_start)  # stored by the instance
    refusal = check_device_limit(lic, active_devices=count_active_devices())
    if refusal:
        return 403, refusal                     # the guide's exact error body

Rules enforced: RS256 only (alg "none", HS256 and any other alg are rejected before
any key is touched), the `kid` must name one of *our* keys (never a key from the
token), `typ` must be the license type, and exp/iat/iss/aud/sub/jti must be present
and valid. "Unlimited" is -1 in every limit.

Without a valid license (none, expired, revoked, tampered), an instance runs in the guide's
Unlicensed Mode: for its first UNLICENSED_TRIAL_DAYS (7) days, counted from the instance's
first start (which the instance stores and passes in), with the trial plan's features and
limits, so a new install works while its owner signs up; after that, the unlicensed column.
Without a first-start time, the unlicensed column at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
LICENSE_TYP = "iotistic-license+jwt"
REVOCATIONS_TYP = "iotistic-revocations+jwt"
DEFAULT_ISSUER = "iotistic-billing"
DEFAULT_AUDIENCE = "iotistic-instance"
UNLIMITED = -1

# The guide's Unlicensed Mode. A copy of core.plans.PLANS["unlicensed"] so this file
# stands alone; tests/licensing keeps the two equal.
UNLICENSED_PLAN = "unlicensed"
UNLICENSED_TRIAL_DAYS = 7
UNLICENSED_FEATURES = {
    "maxDevices": 2,
    "dataRetentionDays": 7,
    "canExportData": False,
    "hasAdvancedAlerts": False,
    "hasApiAccess": False,
    "hasMqttAccess": True,
    "hasCustomBranding": False,
    "canExecuteJobs": True,
    "canScheduleJobs": False,
    "hasRemoteAccess": True,
    "hasOtaUpdates": False,
    "hasCustomDashboards": False,
}
UNLICENSED_LIMITS = {"maxUsers": 1, "maxAlertRules": 0, "maxDashboards": 1, "maxJobTemplates": 0}
# What an instance without a license gets in its first UNLICENSED_TRIAL_DAYS: a copy of
# core.plans.PLANS["trial"], kept equal by tests/licensing.
TRIAL_PLAN = "trial"
TRIAL_FEATURES = {
    "maxDevices": 10,
    "dataRetentionDays": 30,
    "canExportData": True,
    "hasAdvancedAlerts": False,
    "hasApiAccess": True,
    "hasMqttAccess": True,
    "hasCustomBranding": False,
    "canExecuteJobs": True,
    "canScheduleJobs": False,
    "hasRemoteAccess": True,
    "hasOtaUpdates": False,
    "hasCustomDashboards": False,
}
TRIAL_LIMITS = {"maxUsers": 2, "maxAlertRules": 10, "maxDashboards": 3, "maxJobTemplates": 5}


class LicenseError(Exception):
    """The token is not a valid license from us; the message says why."""


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict:
    """The JWK of an RSA public key, with `kid` = its RFC 7638 thumbprint (16 chars)."""
    numbers = public_key.public_numbers()
    jwk = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()[:16]
    return {**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM}


def keys_from_pems(pems: Iterable[str | bytes]) -> dict[str, rsa.RSAPublicKey]:
    keys = {}
    for pem in pems:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise LicenseError("Only RSA public keys are accepted.")
        keys[public_jwk(key)["kid"]] = key
    return keys


def keys_from_jwks(jwks: Mapping | str) -> dict[str, rsa.RSAPublicKey]:
    data = json.loads(jwks) if isinstance(jwks, str) else jwks
    keys = {}
    for jwk in data.get("keys", []):
        if jwk.get("kty") != "RSA" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        if isinstance(key, rsa.RSAPublicKey):
            # The kid is recomputed from the key itself, not trusted from the document.
            keys[public_jwk(key)["kid"]] = key
    return keys


def _decode(
    token: str,
    keys: Mapping[str, rsa.RSAPublicKey],
    *,
    typ: str,
    issuer: str,
    audience: str,
    leeway: int,
    required: list[str],
) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise LicenseError(f"Malformed token: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise LicenseError(f"Algorithm {header.get('alg')!r} is not accepted; only {ALGORITHM}.")
    if header.get("typ") != typ:
        raise LicenseError(f"Token type {header.get('typ')!r} is not {typ!r}.")
    kid = header.get("kid")
    if kid not in keys:
        raise LicenseError(f"Unknown key id {kid!r}.")
    try:
        return jwt.decode(
            token,
            keys[kid],
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": required},
        )
    except jwt.PyJWTError as exc:
        raise LicenseError(f"Invalid token: {exc}") from exc


def verify_license(
    token: str,
    keys: Mapping[str, rsa.RSAPublicKey],
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    revoked_jtis: Iterable[str] = (),
    leeway: int = 60,
) -> dict:
    """The verified claims of a license, or LicenseError."""
    claims = _decode(
        token,
        keys,
        typ=LICENSE_TYP,
        issuer=issuer,
        audience=audience,
        leeway=leeway,
        required=["exp", "iat", "iss", "aud", "sub", "jti"],
    )
    if claims["jti"] in set(revoked_jtis):
        raise LicenseError("This license has been revoked.")
    if not isinstance(claims.get("features"), dict) or not isinstance(claims.get("limits"), dict):
        raise LicenseError("License carries no features or limits.")
    return claims


def verify_revocation_list(
    token: str,
    keys: Mapping[str, rsa.RSAPublicKey],
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    leeway: int = 60,
) -> frozenset[str]:
    """The revoked license ids from a signed revocation list, or LicenseError."""
    claims = _decode(
        token,
        keys,
        typ=REVOCATIONS_TYP,
        issuer=issuer,
        audience=audience,
        leeway=leeway,
        required=["exp", "iat", "iss", "aud"],
    )
    revoked = claims.get("revoked")
    if not isinstance(revoked, list):
        raise LicenseError("Revocation list has no `revoked` array.")
    return frozenset(str(jti) for jti in revoked)


@dataclass(frozen=True)
class License:
    plan: str
    features: dict
    limits: dict
    licensed: bool
    claims: dict = field(default_factory=dict)
    reason: str = ""  # why we fell back to unlicensed mode
    # Unlicensed Mode's trial: when it ends (None when not in it).
    unlicensed_trial_ends_at: datetime | None = None


def effective_license(
    token: str | None,
    keys: Mapping[str, rsa.RSAPublicKey],
    *,
    first_started_at: datetime | None = None,
    now: datetime | None = None,
    **verify_options,
) -> License:
    """The license to enforce: the verified one, or Unlicensed Mode (see the module's notes).

    `first_started_at` is when this instance first started (timezone-aware), `now` the
    current time (default: the clock).
    """
    if not token:
        return _unlicensed("No license configured.", first_started_at, now)
    try:
        claims = verify_license(token, keys, **verify_options)
    except LicenseError as exc:
        return _unlicensed(str(exc), first_started_at, now)
    return License(
        claims["plan"], claims["features"], claims["limits"], licensed=True, claims=claims
    )


def _unlicensed(reason: str, first_started_at: datetime | None, now: datetime | None) -> License:
    if first_started_at is not None:
        if first_started_at.tzinfo is None or (now is not None and now.tzinfo is None):
            raise ValueError("first_started_at and now must be timezone-aware datetimes")
        now = now or datetime.now(UTC)
        ends = first_started_at + timedelta(days=UNLICENSED_TRIAL_DAYS)
        if now < ends:
            until = f"{ends.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            return License(
                TRIAL_PLAN,
                dict(TRIAL_FEATURES),
                dict(TRIAL_LIMITS),
                licensed=False,
                reason=f"{reason.rstrip('.')}; unlicensed trial until {until}.",
                unlicensed_trial_ends_at=ends,
            )
    return License(
        UNLICENSED_PLAN,
        dict(UNLICENSED_FEATURES),
        dict(UNLICENSED_LIMITS),
        licensed=False,
        reason=reason,
    )


def check_device_limit(license: License, active_devices: int) -> dict | None:
    """None when one more device may be added; else the guide's 403 body, word for word."""
    max_devices = int(license.features.get("maxDevices", UNLICENSED_FEATURES["maxDevices"]))
    if max_devices < 0 or active_devices < max_devices:
        return None
    return {
        "error": "Device limit exceeded",
        "message": (
            f"Your {license.plan} plan allows a maximum of {max_devices} devices. "
            f"You currently have {active_devices} active devices. "
            "Please upgrade your plan to add more devices."
        ),
        "details": {
            "currentDevices": active_devices,
            "maxDevices": max_devices,
            "plan": license.plan,
        },
    }
