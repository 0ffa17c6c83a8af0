"""Offline license verification for customer instances.

Standalone: needs only PyJWT and cryptography (no Django), so an instance can vendor
this one file. Usage:

    from licensing.verify import keys_from_jwks, effective_license, check_device_limit
    keys = keys_from_jwks(jwks_json)            # from /.well-known/jwks.json, cached on disk
    revoked = verify_revocation_list(rl_token, keys)  # optional, from /api/licenses/revocations
    lic = effective_license(os.environ.get("IOTISTIC_LICENSE_KEY"), keys, revoked_jtis=revoked)
    refusal = check_device_limit(lic, active_devices=count_active_devices())
    if refusal:
        return 403, refusal                     # the guide's exact error body

Rules enforced: RS256 only (alg "none", HS256 and any other alg are rejected before
any key is touched), the `kid` must name one of *our* keys (never a key from the
token), `typ` must be the license type, and exp/iat/iss/aud/sub/jti must be present
and valid. "Unlimited" is -1 in every limit.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


def effective_license(
    token: str | None,
    keys: Mapping[str, rsa.RSAPublicKey],
    **verify_options,
) -> License:
    """The license to enforce: the verified one, or the Unlicensed Mode fallback."""
    if not token:
        return License(
            UNLICENSED_PLAN,
            dict(UNLICENSED_FEATURES),
            dict(UNLICENSED_LIMITS),
            licensed=False,
            reason="No license configured.",
        )
    try:
        claims = verify_license(token, keys, **verify_options)
    except LicenseError as exc:
        return License(
            UNLICENSED_PLAN,
            dict(UNLICENSED_FEATURES),
            dict(UNLICENSED_LIMITS),
            licensed=False,
            reason=str(exc),
        )
    return License(
        claims["plan"], claims["features"], claims["limits"], licensed=True, claims=claims
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
