"""The standalone verifier: what a customer instance runs, without Django."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.plans import PLANS, UNLICENSED_TRIAL_DAYS
from licensing import verify

VERIFY_PATH = Path(__file__).resolve().parents[2] / "licensing" / "verify.py"


@pytest.fixture(scope="module")
def key_pair():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem


def _claims(**overrides):
    now = int(time.time())
    claims = {
        "iss": verify.DEFAULT_ISSUER,
        "aud": verify.DEFAULT_AUDIENCE,
        "sub": "cust_x",
        "jti": "j1",
        "iat": now,
        "exp": now + 3600,
        "customerId": "cust_x",
        "customerName": "X",
        "plan": "professional",
        "features": PLANS["professional"].features_dict(),
        "limits": PLANS["professional"].limits_dict(),
    }
    claims.update(overrides)
    return claims


def _token(private, claims=None, **header):
    keys = verify.keys_from_pems(
        [
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ]
    )
    headers = {"kid": next(iter(keys)), "typ": verify.LICENSE_TYP, **header}
    return jwt.encode(claims or _claims(), private, algorithm="RS256", headers=headers)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_license_verifies(key_pair):
    private, pem = key_pair
    claims = verify.verify_license(_token(private), verify.keys_from_pems([pem]))
    assert claims["plan"] == "professional"


def test_tampered_payload_is_rejected(key_pair):
    private, pem = key_pair
    header, _, signature = _token(private).split(".")
    forged = _b64(_claims(plan="enterprise", features={"maxDevices": -1}))
    with pytest.raises(verify.LicenseError, match="Signature verification failed"):
        verify.verify_license(f"{header}.{forged}.{signature}", verify.keys_from_pems([pem]))


def test_alg_none_is_rejected(key_pair):
    _, pem = key_pair
    keys = verify.keys_from_pems([pem])
    header = _b64({"alg": "none", "typ": verify.LICENSE_TYP, "kid": next(iter(keys))})
    token = f"{header}.{_b64(_claims())}."
    with pytest.raises(verify.LicenseError, match="'none' is not accepted"):
        verify.verify_license(token, keys)


def test_hs256_signed_with_the_public_key_is_rejected(key_pair):
    """Key confusion: an attacker signs HMAC with the (public) PEM as the secret."""
    import hashlib
    import hmac

    _, pem = key_pair
    keys = verify.keys_from_pems([pem])
    header = _b64({"alg": "HS256", "typ": verify.LICENSE_TYP, "kid": next(iter(keys))})
    payload = _b64(_claims(plan="enterprise"))
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(verify.LicenseError, match="'HS256' is not accepted"):
        verify.verify_license(token, keys)


def test_token_signed_by_another_key_with_our_kid_is_rejected(key_pair):
    _, pem = key_pair
    keys = verify.keys_from_pems([pem])
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        _claims(),
        attacker,
        algorithm="RS256",
        headers={"kid": next(iter(keys)), "typ": verify.LICENSE_TYP},
    )
    with pytest.raises(verify.LicenseError, match="Signature verification failed"):
        verify.verify_license(token, keys)


def test_unknown_kid_and_embedded_jwk_are_rejected(key_pair):
    private, pem = key_pair
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_jwk = verify.public_jwk(attacker.public_key())
    token = jwt.encode(
        _claims(),
        attacker,
        algorithm="RS256",
        headers={"kid": attacker_jwk["kid"], "typ": verify.LICENSE_TYP, "jwk": attacker_jwk},
    )
    with pytest.raises(verify.LicenseError, match="Unknown key id"):
        verify.verify_license(token, verify.keys_from_pems([pem]))


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (_claims(exp=int(time.time()) - 3600), "expired"),
        (_claims(iss="someone-else"), "issuer"),
        (_claims(aud="another-product"), "(?i)audience"),
    ],
)
def test_expired_wrong_issuer_or_audience_is_rejected(key_pair, claims, message):
    private, pem = key_pair
    with pytest.raises(verify.LicenseError, match=message):
        verify.verify_license(_token(private, claims), verify.keys_from_pems([pem]))


def test_missing_jti_is_rejected(key_pair):
    private, pem = key_pair
    claims = _claims()
    del claims["jti"]
    with pytest.raises(verify.LicenseError, match="jti"):
        verify.verify_license(_token(private, claims), verify.keys_from_pems([pem]))


def test_wrong_typ_is_rejected(key_pair):
    private, pem = key_pair
    with pytest.raises(verify.LicenseError, match="type"):
        verify.verify_license(_token(private, typ="JWT"), verify.keys_from_pems([pem]))


@pytest.mark.parametrize("token", [None, "", "garbage"], ids=["none", "empty", "garbage"])
def test_no_or_bad_license_falls_back_to_unlicensed_mode(key_pair, token):
    _, pem = key_pair
    keys = verify.keys_from_pems([pem])
    license_ = verify.effective_license(token, keys)
    assert license_.licensed is False
    assert license_.features["maxDevices"] == 2
    assert license_.features["canExecuteJobs"] is True
    assert license_.features["canScheduleJobs"] is False
    assert license_.features["hasRemoteAccess"] is True
    assert license_.features["hasOtaUpdates"] is False
    assert license_.features["canExportData"] is False


def test_unlicensed_copy_matches_the_plan_catalogue():
    assert PLANS["unlicensed"].features_dict() == verify.UNLICENSED_FEATURES
    assert PLANS["unlicensed"].limits_dict() == verify.UNLICENSED_LIMITS
    assert verify.UNLICENSED_TRIAL_DAYS == UNLICENSED_TRIAL_DAYS


def test_device_limit_body_matches_the_guide_character_for_character(key_pair):
    private, pem = key_pair
    license_ = verify.effective_license(_token(private), verify.keys_from_pems([pem]))
    expected = (
        '{\n  "error": "Device limit exceeded",\n  "message": "Your professional plan allows a '
        "maximum of 50 devices. You currently have 50 active devices. Please upgrade your plan "
        'to add more devices.",\n  "details": {\n    "currentDevices": 50,\n    "maxDevices": 50,'
        '\n    "plan": "professional"\n  }\n}'
    )
    assert json.dumps(verify.check_device_limit(license_, 50), indent=2) == expected
    assert verify.check_device_limit(license_, 49) is None


def test_unlimited_devices_never_hit_the_limit(key_pair):
    private, pem = key_pair
    claims = _claims(plan="enterprise", features=PLANS["enterprise"].features_dict())
    license_ = verify.effective_license(_token(private, claims), verify.keys_from_pems([pem]))
    assert verify.check_device_limit(license_, 1_000_000) is None


def test_verifier_imports_without_django():
    code = (
        "import sys; sys.modules['django'] = None\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('v', {str(VERIFY_PATH)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['v'] = m\n"
        "spec.loader.exec_module(m)\n"
        "print(m.effective_license(None, {}).plan)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unlicensed"
