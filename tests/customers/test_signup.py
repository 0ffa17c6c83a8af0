import re

import jwt
import pytest
from django.contrib.auth.hashers import check_password

from customers.models import Customer, CustomerApiKey
from deployments.models import Deployment
from licensing.models import LicenseHistory
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


def test_signup_returns_the_guides_shape(signup, settings):
    body = signup(email="Owner@Example.com", company_name="Acme Corp", full_name="John Doe").body

    assert set(body) == {"customer", "subscription", "license", "deployment", "api_key"}
    customer = body["customer"]
    assert re.fullmatch(r"cust_[a-z0-9]{16}", customer["customer_id"])
    assert customer["email"] == "owner@example.com"
    assert customer["company_name"] == "Acme Corp"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", customer["created_at"])
    assert "password" not in customer
    assert body["subscription"]["plan"] == "starter"
    assert body["subscription"]["status"] == "trialing"
    assert body["subscription"]["trial_ends_at"].endswith("Z")
    assert set(body["license"]) == {"jwt"}
    assert jwt.get_unverified_header(body["license"]["jwt"])["alg"] == "RS256"
    short = customer["customer_id"].removeprefix("cust_")[:8]
    assert body["deployment"]["namespace"] == f"customer-{short}"
    assert body["deployment"]["status"] == "queued"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["deployment"]["job_id"])
    assert body["api_key"].startswith("ik_")


def test_signup_writes_every_row_with_secrets_hashed(signup, settings):
    signed_up = signup(password="SecurePass123")
    customer = Customer.objects.get(customer_id=signed_up.id)

    assert check_password("SecurePass123", customer.password)
    assert "SecurePass123" not in customer.password
    subscription = Subscription.objects.get(customer=customer)
    trial_days = (subscription.trial_ends_at - customer.created_at).days
    assert trial_days in (settings.DEFAULT_TRIAL_DAYS - 1, settings.DEFAULT_TRIAL_DAYS)
    api_key = CustomerApiKey.objects.get(customer=customer)
    assert signed_up.key not in (api_key.key_hash, api_key.prefix)
    assert signed_up.key.startswith(api_key.prefix + "_")
    assert Deployment.objects.get(customer=customer).status == Deployment.Status.QUEUED
    assert LicenseHistory.objects.filter(customer=customer, action="generated").count() == 1


def test_duplicate_email_is_409_case_insensitively(signup, api_client):
    signup(email="dup@example.com")
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "DUP@example.com",
            "company_name": "B",
            "full_name": "B B",
            "password": "SecurePass123",
        },
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"] == "Customer already exists"
    assert Customer.objects.count() == 1


def test_weak_password_is_400_and_writes_nothing(api_client):
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "weak@example.com",
            "company_name": "W",
            "full_name": "W W",
            "password": "12345678",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "password" in response.json()["details"]
    assert not Customer.objects.exists()


def test_failure_midway_leaves_no_customer(api_client, settings):
    settings.LICENSE_PRIVATE_KEY_PATH = "/nonexistent/private-key.pem"
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "half@example.com",
            "company_name": "H",
            "full_name": "H H",
            "password": "SecurePass123",
        },
        format="json",
    )
    assert response.status_code == 503
    assert response.json()["error"] == "License signing unavailable"
    assert not Customer.objects.exists()
    assert not Subscription.objects.exists()
    assert not CustomerApiKey.objects.exists()


def test_staff_create_takes_trial_days_and_no_password(staff_client):
    response = staff_client.post(
        "/api/customers", {"email": "staff-made@example.com", "trial_days": 30}, format="json"
    )
    assert response.status_code == 201
    customer = Customer.objects.get(email="staff-made@example.com")
    assert customer.password == ""
    assert (customer.subscription.trial_ends_at - customer.created_at).days in (29, 30)


def test_signup_cannot_choose_its_trial_length(api_client):
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "t@example.com",
            "company_name": "T",
            "full_name": "T T",
            "password": "SecurePass123",
            "trial_days": 365,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"trial_days": ["Unknown field."]}


def test_list_pages_with_page_and_limit(staff_client, signup):
    for _ in range(5):
        signup()
    first = staff_client.get("/api/customers?page=1&limit=2").json()
    last = staff_client.get("/api/customers?page=3&limit=2").json()
    assert first["pagination"] == {"page": 1, "limit": 2, "total": 5, "pages": 3}
    assert len(first["customers"]) == 2
    assert len(last["customers"]) == 1
    assert first["customers"][0]["subscription"]["status"] == "trialing"
    seen = {c["customer_id"] for c in first["customers"]} | {
        c["customer_id"] for c in last["customers"]
    }
    assert len(seen) == 3


def test_get_customer_has_the_guides_fields(staff_client, signup):
    customer_id = signup().id
    response = staff_client.get(f"/api/customers/{customer_id}")
    assert response.status_code == 200
    customer = response.json()["customer"]
    for field in ("customer_id", "email", "company_name", "stripe_customer_id", "created_at"):
        assert field in customer
    assert "password" not in response.content.decode()


def test_get_unknown_customer_is_404(staff_client):
    response = staff_client.get("/api/customers/cust_doesnotexist0000")
    assert response.status_code == 404


def test_api_key_list_shows_prefixes_never_secrets(signup):
    customer = signup()
    response = customer.client.get(f"/api/customers/{customer.id}/api-keys")
    assert response.status_code == 200
    keys = response.json()["api_keys"]
    assert len(keys) == 1
    assert customer.key.startswith(keys[0]["prefix"])
    assert customer.key not in response.content.decode()
