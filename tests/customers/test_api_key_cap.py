"""A customer holds at most MAX_API_KEYS_PER_CUSTOMER unrevoked API keys (issue 14 item 15):
one more answers 409 saying the cap and how to free one, revoking one frees room, rotation
works at the cap, and concurrent issuance cannot pass it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from core.errors import ApplicationError
from customers import credentials
from customers.models import Customer, CustomerApiKey
from tests.admin.helpers import operation_url, page_messages
from tests.helpers import staff_api_client
from tests.openapi_check import check_response

pytestmark = pytest.mark.django_db


def _unrevoked(customer_id: str) -> int:
    return CustomerApiKey.objects.filter(
        customer__customer_id=customer_id, revoked_at__isnull=True
    ).count()


def test_the_cap_defaults_to_ten():
    assert django_settings.MAX_API_KEYS_PER_CUSTOMER == 10


def test_one_key_past_the_cap_is_refused_until_one_is_revoked(signup, settings):
    settings.MAX_API_KEYS_PER_CUSTOMER = 3
    customer = signup()  # its signup key is the first
    path = f"/api/customers/{customer.id}/api-keys"
    for _ in range(2):
        issued = customer.client.post(path, {"name": "more"}, format="json")
        assert issued.status_code == 201, issued.content

    refused = customer.client.post(path, {"name": "one too many"}, format="json")

    assert refused.status_code == 409, refused.content
    body = refused.json()
    assert body["error"] == "API key limit reached"
    assert body["details"] == {"max_api_keys": 3, "unrevoked_keys": 3}
    assert "(3)" in body["message"]
    assert "Revoke one" in body["message"]
    assert f"DELETE /api/customers/{customer.id}/api-keys/" in body["message"]
    check_response(refused, path, "post")
    assert _unrevoked(customer.id) == 3

    # revoking one frees room for exactly one
    prefix = issued.json()["prefix"]
    revoked = customer.client.delete(f"{path}/{prefix}")
    assert revoked.status_code == 200, revoked.content
    assert customer.client.post(path, {}, format="json").status_code == 201
    assert customer.client.post(path, {}, format="json").status_code == 409
    assert _unrevoked(customer.id) == 3


def test_staff_are_held_to_the_cap_too(signup, settings):
    settings.MAX_API_KEYS_PER_CUSTOMER = 1
    customer = signup()
    response = staff_api_client().post(f"/api/customers/{customer.id}/api-keys", {}, format="json")
    assert response.status_code == 409, response.content


def test_the_back_office_is_held_to_the_cap_and_rotates_at_it(signup, settings, django_user_model):
    settings.MAX_API_KEYS_PER_CUSTOMER = 1
    customer = Customer.objects.get(customer_id=signup().id)
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "x"))

    refused = client.post(operation_url("customers/customer", customer.pk, "issue-key"), {})

    assert refused.status_code == 200
    assert "the most allowed (1)" in page_messages(refused)
    assert _unrevoked(customer.customer_id) == 1
    rotated = client.post(operation_url("customers/customer", customer.pk, "rotate-keys"), {})
    assert 'id="operation-secret"' in rotated.content.decode()
    assert _unrevoked(customer.customer_id) == 1


def test_rotation_works_at_the_cap(signup, settings):
    settings.MAX_API_KEYS_PER_CUSTOMER = 2
    customer = signup()
    path = f"/api/customers/{customer.id}/api-keys"
    assert customer.client.post(path, {}, format="json").status_code == 201
    assert customer.client.post(path, {}, format="json").status_code == 409

    rotated = customer.client.post(f"{path}/rotate", {"name": "new"}, format="json")

    assert rotated.status_code == 201, rotated.content
    assert _unrevoked(customer.id) == 1
    assert CustomerApiKey.objects.get(prefix=rotated.json()["prefix"]).revoked_at is None
    # and the rotated customer may issue again up to the cap
    assert staff_api_client().post(path, {}, format="json").status_code == 201
    assert _unrevoked(customer.id) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuance_cannot_pass_the_cap(signup, settings):
    # given a customer with its signup key and room for 2 more
    settings.MAX_API_KEYS_PER_CUSTOMER = 3
    customer_id = signup().id
    threads = 12
    start = threading.Barrier(threads)

    def issue(_):
        customer = Customer.objects.get(customer_id=customer_id)
        start.wait()
        try:
            credentials.api_key_issue(customer=customer, name="race")
        except ApplicationError as exc:
            return exc.status_code
        finally:
            connection.close()  # each thread has its own connection; the test DB must drop
        return 201

    # when 12 threads issue at once, each on its own connection
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(issue, range(threads)))

    # then exactly 2 got a key and the customer holds the cap, no more
    assert sorted(results) == [201] * 2 + [409] * 10, results
    assert _unrevoked(customer_id) == 3
