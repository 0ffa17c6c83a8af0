"""Each principal is refused on the others' endpoints; a key never reads another customer."""

import json
import time

import pytest
from django.contrib.auth import get_user_model

from customers.credentials import staff_token_issue
from stripe_simulator import sign_payload
from tests.helpers import customer_client, post_signed_webhook

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_test_secret"


def test_staff_endpoint_without_credentials_is_401_with_challenge(api_client):
    response = api_client.get("/api/customers")
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication required"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_staff_endpoint_with_wrong_bearer_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-the-token")
    response = api_client.get("/api/customers")
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication failed"


def test_staff_endpoint_refuses_customer_key_with_403(signup):
    customer = signup()
    response = customer.client.get("/api/customers")
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


def test_staff_only_revoke_refuses_the_customers_own_key(signup):
    customer = signup()
    response = customer.client.post(
        f"/api/licenses/{customer.id}/revoke", {"reason": "self"}, format="json"
    )
    assert response.status_code == 403


def test_admin_token_is_accepted(staff_client, signup):
    signup()
    response = staff_client.get("/api/customers")
    assert response.status_code == 200
    assert response.json()["pagination"]["total"] == 1


def test_per_staff_token_is_accepted_and_revocable(api_client, signup):
    signup()
    user = get_user_model().objects.create_user("ops", password="x" * 12, is_staff=True)
    issued = staff_token_issue(user=user, name="script")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert api_client.get("/api/customers").status_code == 200
    issued.record.revoked_at = issued.record.created_at
    issued.record.save()
    assert api_client.get("/api/customers").status_code == 401


def test_token_of_non_staff_user_is_refused(api_client):
    user = get_user_model().objects.create_user("former", password="x" * 12, is_staff=True)
    issued = staff_token_issue(user=user)
    user.is_staff = False
    user.save()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert api_client.get("/api/customers").status_code == 401


def test_staff_session_is_accepted_and_non_staff_session_is_not(api_client, signup):
    signup()
    user_model = get_user_model()
    # force_login: a session as the admin's login makes it (the brute-force guard, django-axes,
    # wants the request that the test client's password login does not pass)
    viewer = user_model.objects.create_user("viewer", password="x" * 12, is_staff=False)
    api_client.force_login(viewer)
    assert api_client.get("/api/customers").status_code == 401
    staffer = user_model.objects.create_user("staffer", password="y" * 12, is_staff=True)
    api_client.force_login(staffer)
    assert api_client.get("/api/customers").status_code == 200


def test_customer_key_reads_its_own_customer(signup):
    customer = signup()
    response = customer.client.get(f"/api/customers/{customer.id}")
    assert response.status_code == 200
    assert response.json()["customer"]["customer_id"] == customer.id


@pytest.mark.parametrize(
    "path",
    [
        "/api/customers/{id}",
        "/api/licenses/{id}",
        "/api/licenses/{id}/history",
        "/api/customers/{id}/api-keys",
    ],
)
def test_customer_key_gets_404_for_another_customer(signup, path):
    alice, bob = signup(), signup()
    response = alice.client.get(path.format(id=bob.id))
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"
    assert bob.email not in response.content.decode()


def test_customer_key_cannot_revoke_another_customers_key(signup):
    alice, bob = signup(), signup()
    bob_prefix = bob.key.rsplit("_", 1)[0]
    response = alice.client.delete(f"/api/customers/{bob.id}/api-keys/{bob_prefix}")
    assert response.status_code == 404
    assert bob.client.get(f"/api/customers/{bob.id}").status_code == 200


def test_invalid_and_revoked_customer_keys_are_401(signup):
    customer = signup()
    assert customer_client("ik_nope_nope").get(f"/api/customers/{customer.id}").status_code == 401
    # a key with the right prefix but a wrong secret
    forged = customer.key[:-4] + "abcd"
    assert customer_client(forged).get(f"/api/customers/{customer.id}").status_code == 401
    own = customer.client
    prefix = customer.key.rsplit("_", 1)[0]
    assert own.delete(f"/api/customers/{customer.id}/api-keys/{prefix}").status_code == 200
    assert own.get(f"/api/customers/{customer.id}").status_code == 401


def test_rotation_issues_a_working_key_and_kills_the_old(signup):
    customer = signup()
    old = customer.client
    response = old.post(f"/api/customers/{customer.id}/api-keys/rotate", {}, format="json")
    assert response.status_code == 201
    new_key = response.json()["api_key"]
    assert new_key != customer.key
    assert customer_client(new_key).get(f"/api/customers/{customer.id}").status_code == 200
    assert old.get(f"/api/customers/{customer.id}").status_code == 401


@pytest.mark.parametrize("principal", ["staff", "customer"])
def test_webhook_refuses_staff_and_customer_credentials_without_signature(
    staff_client, signup, settings, principal
):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    customer = signup()
    client = {"staff": staff_client, "customer": customer.client}[principal]
    payload = json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1}).encode()
    response = client.post("/api/webhooks/stripe", data=payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid signature"


def test_webhook_accepts_a_stripe_signature_once_per_event(api_client, settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_old", WEBHOOK_SECRET]
    event = {"id": "evt_2", "type": "invoice.paid", "created": 1}
    signed_at = int(time.time())
    first = post_signed_webhook(api_client, event, secret=WEBHOOK_SECRET, timestamp=signed_at)
    second = post_signed_webhook(api_client, event, secret=WEBHOOK_SECRET, timestamp=signed_at)
    assert first.status_code == 200
    assert first.json()["duplicate"] is False
    assert second.status_code == 200
    assert second.json()["duplicate"] is True


def test_webhook_refuses_a_bad_signature(api_client, settings):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    event = {"id": "evt_3", "type": "invoice.paid"}
    response = post_signed_webhook(api_client, event, secret="whsec_someone_else")
    assert response.status_code == 400


def test_stripe_signature_is_not_a_credential_for_staff_endpoints(api_client, settings):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    header = sign_payload(b"{}", WEBHOOK_SECRET)
    response = api_client.get("/api/customers", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 401
