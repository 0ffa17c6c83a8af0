"""GET /api/licenses/:id with a customer key, the hot path of every instance: one query for
key, customer, subscription and revocation (none while the process holds the key:
tests/customers/test_held_keys.py), and a revocation still refuses the very next fetch
(nothing cached outlives it)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def test_unchanged_license_fetch_is_one_query(signup, settings):
    settings.API_KEY_CACHE_SECONDS = 0  # keys not held: read on each request
    customer = signup()
    customer.client.get(f"/api/licenses/{customer.id}")  # signs, and refreshes last_used_at
    # when
    with CaptureQueriesContext(connection) as queries:
        response = customer.client.get(f"/api/licenses/{customer.id}")
    # then the key lookup joined to customer, subscription and revocation is all it reads
    assert response.status_code == 200
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    sql = queries.captured_queries[0]["sql"]
    assert "customers_customerapikey" in sql
    assert "subscriptions_subscription" in sql
    assert "licensing_licenserevocation" in sql


def test_revocation_refuses_the_next_fetch_with_the_same_key(signup, staff_client):
    customer = signup()
    assert customer.client.get(f"/api/licenses/{customer.id}").status_code == 200
    revoked = staff_client.post(
        f"/api/licenses/{customer.id}/revoke", {"reason": "chargeback"}, format="json"
    )
    assert revoked.status_code == 200
    # when
    response = customer.client.get(f"/api/licenses/{customer.id}")
    # then
    assert response.status_code == 403
    assert response.json()["error"] == "License revoked"


def test_another_customers_key_still_gets_404(signup):
    alice, bob = signup(), signup()
    assert bob.client.get(f"/api/licenses/{alice.id}").status_code == 404
    assert bob.client.get(f"/api/licenses/{alice.id}/history").status_code == 404


def test_revoked_key_is_refused_at_once(signup):
    customer = signup()
    assert customer.client.get(f"/api/licenses/{customer.id}").status_code == 200
    customer.client.post(f"/api/customers/{customer.id}/api-keys/rotate", format="json")
    # the old key was revoked by the rotation: the next request with it is refused
    assert customer.client.get(f"/api/licenses/{customer.id}").status_code == 401
