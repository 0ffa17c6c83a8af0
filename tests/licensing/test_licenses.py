import hashlib

import jwt
import pytest
from django.core.management import call_command

from core.plans import PLANS, UNLIMITED
from licensing import verify
from licensing.models import LicenseHistory
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def _keys_from_api(api_client):
    pem = api_client.get("/api/licenses/public-key").content
    jwks = api_client.get("/.well-known/jwks.json").json()
    return verify.keys_from_pems([pem]), verify.keys_from_jwks(jwks)


def test_signup_license_verifies_with_pem_and_jwks_and_matches_the_trial_plan(signup, api_client):
    customer = signup(company_name="Acme Corp")
    token = customer.license
    pem_keys, jwks_keys = _keys_from_api(api_client)
    assert pem_keys.keys() == jwks_keys.keys()

    for keys in (pem_keys, jwks_keys):
        claims = verify.verify_license(token, keys)
        assert claims["customerId"] == customer.id
        assert claims["sub"] == customer.id
        assert claims["customerName"] == "Acme Corp"
        assert claims["plan"] == "trial"
        assert claims["features"] == PLANS["trial"].features_dict()
        assert claims["limits"] == PLANS["trial"].limits_dict()
        assert claims["trial"]["isTrialMode"] is True
        assert claims["subscription"]["status"] == "trialing"
        assert claims["issuedAt"] == claims["iat"]
        assert claims["expiresAt"] == claims["exp"]


def test_paid_license_payload_has_the_guides_fields(staff_client, settings):
    subscription = SubscriptionFactory(plan="professional")
    customer_id = subscription.customer.customer_id
    response = staff_client.get(f"/api/licenses/{customer_id}")
    assert response.status_code == 200
    body = response.json()
    decoded = body["decoded"]
    assert {
        "customerId",
        "customerName",
        "plan",
        "features",
        "limits",
        "trial",
        "subscription",
        "issuedAt",
        "expiresAt",
        "iss",
        "sub",
        "iat",
        "exp",
        "jti",
        "aud",
    } == set(decoded)
    assert decoded["features"]["maxDevices"] == 50
    assert decoded["features"]["dataRetentionDays"] == 365
    assert decoded["limits"] == {
        "maxUsers": 15,
        "maxAlertRules": 100,
        "maxDashboards": 20,
        "maxJobTemplates": 50,
    }
    assert decoded["trial"] == {"isTrialMode": False}
    period_end = int(subscription.current_period_end.timestamp())
    assert decoded["exp"] == period_end + settings.LICENSE_GRACE_DAYS * 86400
    assert jwt.decode(body["license"], options={"verify_signature": False}) == decoded


def test_enterprise_unlimited_is_minus_one(staff_client):
    subscription = SubscriptionFactory(plan="enterprise")
    decoded = staff_client.get(f"/api/licenses/{subscription.customer.customer_id}").json()[
        "decoded"
    ]
    assert decoded["features"]["maxDevices"] == UNLIMITED == -1
    assert decoded["limits"]["maxUsers"] == -1


def test_unchanged_license_is_not_resigned(signup, staff_client):
    customer = signup()
    first = staff_client.get(f"/api/licenses/{customer.id}").json()["license"]
    second = staff_client.get(f"/api/licenses/{customer.id}").json()["license"]
    assert first == second == customer.license
    assert LicenseHistory.objects.filter(customer__customer_id=customer.id).count() == 1


def test_plan_change_resigns_and_logs_upgrade_then_downgrade(signup, staff_client):
    customer = signup()
    call_command("customer", "upgrade", "--id", customer.id, "--plan", "professional", "--grant")
    call_command("customer", "upgrade", "--id", customer.id, "--plan", "starter", "--grant")
    history = staff_client.get(f"/api/licenses/{customer.id}/history").json()

    actions = [(row["action"], row["plan"]) for row in history["history"]]
    assert actions == [
        ("downgraded", "starter"),
        ("upgraded", "professional"),
        ("generated", "trial"),
    ]
    assert history["history"][1]["metadata"]["oldPlan"] == "trial"
    assert history["history"][1]["metadata"]["newPlan"] == "professional"
    assert history["history"][1]["max_devices"] == 50
    assert history["statistics"] == {
        "totalGenerations": 3,
        "byAction": {"generated": 1, "upgraded": 1, "downgraded": 1},
        "byPlan": {"trial": 1, "professional": 1, "starter": 1},
        "otherEvents": {},
    }
    assert history["email"] == customer.email


def test_history_holds_hashes_never_tokens(signup, staff_client):
    customer = signup()
    token = customer.license
    row = LicenseHistory.objects.get(customer__customer_id=customer.id)
    assert row.license_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(value) for value in LicenseHistory.objects.values_list())
    assert token not in stored
    assert token.split(".")[2] not in stored
    response = staff_client.get(f"/api/licenses/{customer.id}/history")
    assert token not in response.content.decode()


def test_revocation_refuses_fetches_and_is_listed(signup, staff_client, api_client):
    customer = signup()
    token = customer.license
    response = staff_client.post(
        f"/api/licenses/{customer.id}/revoke",
        {"reason": "Customer requested cancellation"},
        format="json",
    )
    assert response.status_code == 200

    refused = customer.client.get(f"/api/licenses/{customer.id}")
    assert refused.status_code == 403
    assert refused.json()["error"] == "License revoked"
    assert "Customer requested cancellation" in refused.json()["message"]

    _, keys = _keys_from_api(api_client)
    revocations = api_client.get("/api/licenses/revocations").json()["revocations"]
    revoked = verify.verify_revocation_list(revocations, keys)
    assert verify.verify_license(token, keys)["jti"] in revoked
    with pytest.raises(verify.LicenseError, match="revoked"):
        verify.verify_license(token, keys, revoked_jtis=revoked)
    fallback = verify.effective_license(token, keys, revoked_jtis=revoked)
    assert fallback.licensed is False
    assert fallback.plan == "unlicensed"

    again = staff_client.post(
        f"/api/licenses/{customer.id}/revoke", {"reason": "twice"}, format="json"
    )
    assert again.json()["reason"] == "Customer requested cancellation"
    assert LicenseHistory.objects.filter(action="revoked").count() == 1


def test_revocation_list_is_not_a_license(api_client, signup):
    signup()
    _, keys = _keys_from_api(api_client)
    revocations = api_client.get("/api/licenses/revocations").json()["revocations"]
    with pytest.raises(verify.LicenseError, match="type"):
        verify.verify_license(revocations, keys)


def test_rotation_keeps_old_licenses_valid_until_retired(
    signup, staff_client, api_client, settings
):
    customer = signup()
    old_token = customer.license
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    call_command("rotate_license_key")

    jwks = api_client.get("/.well-known/jwks.json").json()
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == 2
    assert old_kid in kids
    keys = verify.keys_from_jwks(jwks)
    assert verify.verify_license(old_token, keys)["customerId"] == customer.id

    new_token = staff_client.get(f"/api/licenses/{customer.id}").json()["license"]
    new_kid = jwt.get_unverified_header(new_token)["kid"]
    assert new_kid != old_kid
    assert new_kid == kids[0]
    assert verify.verify_license(new_token, keys)

    # `=`: a key id is base64url and may begin with "-" (a separate argument would be an option)
    call_command("rotate_license_key", f"--retire={old_kid}")
    keys_after = verify.keys_from_jwks(api_client.get("/.well-known/jwks.json").json())
    with pytest.raises(verify.LicenseError, match="Unknown key id"):
        verify.verify_license(old_token, keys_after)
    assert verify.verify_license(new_token, keys_after)


def test_generate_keys_writes_private_key_0600(tmp_path, settings):
    settings.LICENSE_PRIVATE_KEY_PATH = tmp_path / "k" / "private-key.pem"
    settings.LICENSE_PUBLIC_KEY_PATH = tmp_path / "k" / "public-key.pem"
    call_command("generate_keys")
    assert settings.LICENSE_PRIVATE_KEY_PATH.stat().st_mode & 0o777 == 0o600
    assert settings.LICENSE_PUBLIC_KEY_PATH.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = settings.LICENSE_PRIVATE_KEY_PATH.read_bytes()
    call_command("generate_keys", "--if-missing")
    assert settings.LICENSE_PRIVATE_KEY_PATH.read_bytes() == before
