"""GET /api/licenses/:id with a customer key, the hot path of every instance: one query for
key, customer, subscription and revocation (none while the process holds the key:
tests/customers/test_held_keys.py), and a revocation still refuses the very next fetch
(nothing cached outlives it)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from licensing.models import LicenseHistory
from licensing.services import license_restore
from subscriptions.models import Subscription

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


# ---- with the cache shared by every process (Redis): keys and licenses held per process


def _fetch(customer):
    response = customer.client.get(f"/api/licenses/{customer.id}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_held_license_is_answered_until_something_changes(
    signup_committed, shared_cache, staff_client, django_capture_on_commit_callbacks
):
    customer = signup_committed()
    first = _fetch(customer)["license"]
    assert _fetch(customer)["license"] == first
    # when the license is revoked and the revocation lifted (each committed)
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(f"/api/licenses/{customer.id}/revoke", {"reason": "x"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        license_restore(customer=Customer.objects.get(customer_id=customer.id), actor="test")
    # then the next fetch is the fresh license the history lists last, not the held one
    fresh = _fetch(customer)["license"]
    assert fresh != first
    latest = LicenseHistory.objects.filter(customer__customer_id=customer.id).latest("id")
    assert latest.license_hash == hashlib.sha256(fresh.encode()).hexdigest()


def test_a_held_license_due_for_re_signing_is_signed_anew(
    signup_committed, shared_cache, monkeypatch
):
    customer = signup_committed()
    held = _fetch(customer)
    # when the clock reaches the day before it expires
    due = datetime.fromtimestamp(held["decoded"]["exp"], tz=UTC) - timedelta(hours=23)
    monkeypatch.setattr(timezone, "now", lambda: due)
    # then the fetch signs a new one (the subscription's period is what bounds it)
    assert _fetch(customer)["license"] != held["license"]


def test_an_unchanged_fetch_is_one_redis_round_trip(signup_committed, shared_cache, monkeypatch):
    customer = signup_committed()
    _fetch(customer)
    trips = []
    execute, command = redis.client.Pipeline.execute, redis.Redis.execute_command

    def pipeline(pipe, *args, **kwargs):
        trips.append([c[0][0] for c in pipe.command_stack])
        return execute(pipe, *args, **kwargs)

    def single(client, *args, **kwargs):
        trips.append([args[0]])
        return command(client, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    monkeypatch.setattr(redis.Redis, "execute_command", single)
    # when
    _fetch(customer)
    # then the data version (and whether a write is pending) and the rate limit's counting
    # went in one pipeline, and the
    # held license was answered (no read of the license cache)
    assert trips == [["GET", "ZCOUNT", "SET", "INCRBY", "GET"]]


def test_a_license_without_a_period_end_is_not_signed_anew_on_every_fetch(signup):
    # given a subscription without a period end (a grant, or a state Stripe left it in)
    customer = signup()
    Subscription.objects.filter(customer__customer_id=customer.id).update(
        status="active", current_period_end=None, trial_ends_at=None
    )
    first = customer.client.get(f"/api/licenses/{customer.id}").json()
    # when it is fetched again
    again = customer.client.get(f"/api/licenses/{customer.id}").json()
    # then the same license answers (it was signed once, and runs from its signing)
    assert again["license"] == first["license"]
    assert LicenseHistory.objects.filter(customer__customer_id=customer.id).count() == 2
    assert first["decoded"]["exp"] > first["decoded"]["iat"]
