"""A customer key's principal (key, customer, subscription, revocation) is held per process
while the shared data version is unchanged: an unchanged request reads nothing from the
database, and any write Django makes to those rows, by whatever code, counts at once."""

from __future__ import annotations

import threading

import pytest
import redis
from django.core.cache import caches
from django.db import OperationalError, connection, transaction
from django.db.models import Subquery
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core import data_version
from customers import auth
from customers.models import Customer, CustomerApiKey
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


def _license(customer):
    return customer.client.get(f"/api/licenses/{customer.id}")


def test_an_unchanged_fetch_reads_nothing_from_the_database(signup_committed, shared_cache):
    customer = signup_committed()
    assert _license(customer).status_code == 200  # holds the key
    # when
    with CaptureQueriesContext(connection) as queries:
        response = _license(customer)
    # then
    assert response.status_code == 200
    assert response.json()["decoded"]["sub"] == customer.id
    assert queries.captured_queries == []


def test_a_license_revocation_refuses_the_next_fetch(signup, staff_client, shared_cache):
    customer = signup()
    assert _license(customer).status_code == 200
    revoked = staff_client.post(
        f"/api/licenses/{customer.id}/revoke", {"reason": "chargeback"}, format="json"
    )
    assert revoked.status_code == 200
    assert _license(customer).json()["error"] == "License revoked"


def test_a_rotated_key_is_refused_at_once(signup, shared_cache):
    customer = signup()
    assert _license(customer).status_code == 200
    rotated = customer.client.post(f"/api/customers/{customer.id}/api-keys/rotate", format="json")
    assert rotated.status_code in (200, 201)
    assert _license(customer).status_code == 401


def _status(decoded):
    return decoded["subscription"]["status"]


@pytest.mark.parametrize(
    ("write", "seen"),
    [
        pytest.param(
            lambda pk: Subscription.objects.filter(customer_id=pk).update(status="past_due"),
            lambda decoded: _status(decoded) == "past_due",
            id="queryset-update",
        ),
        pytest.param(
            lambda pk: connection.cursor().execute(
                f'UPDATE "{Customer._meta.db_table}" SET "company_name" = %s WHERE id = %s',  # noqa: S608
                ["Renamed Ltd", pk],
            ),
            lambda decoded: decoded["customerName"] == "Renamed Ltd",
            id="raw-sql",
        ),
    ],
)
def test_a_write_that_no_service_makes_counts_too(signup, shared_cache, write, seen):
    customer = signup()
    assert not seen(_license(customer).json()["decoded"])
    # when the row changes by a path that knows nothing of held keys
    write(Customer.objects.get(customer_id=customer.id).pk)
    # then the next fetch sees it
    assert seen(_license(customer).json()["decoded"])


def test_a_deactivated_customer_can_no_longer_write(signup, shared_cache):
    customer = signup()
    assert _license(customer).status_code == 200
    Customer.objects.filter(customer_id=customer.id).update(is_active=False)
    response = customer.client.post("/api/usage/report", {}, format="json")
    assert response.status_code == 403
    assert "deactivated" in response.json()["message"]


def test_a_key_being_used_does_not_change_the_version(
    signup_committed, shared_cache, django_capture_on_commit_callbacks
):
    customer = signup_committed()
    with django_capture_on_commit_callbacks(execute=True):  # a write of its own: committed
        CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(last_used_at=None)
    before = data_version.current()
    assert before is not None
    # when a request refreshes the key's last_used_at
    assert _license(customer).status_code == 200
    # then it was written, and the version (every process's held keys) stayed
    assert CustomerApiKey.objects.get(customer__customer_id=customer.id).last_used_at
    assert data_version.current() == before


def test_each_request_gets_its_own_copy(signup_committed, shared_cache):
    customer = signup_committed()
    first = auth.customer_key_lookup(customer.key)
    first.customer.company_name = "changed by one request"
    first.customer.subscription.plan = "enterprise"
    # when the next request looks the key up
    second = auth.customer_key_lookup(customer.key)
    # then it holds what the database holds
    assert second is not first
    stored = Customer.objects.get(customer_id=customer.id)
    assert second.customer.company_name == stored.company_name
    assert second.customer.subscription.plan == stored.subscription.plan


def test_unknown_keys_are_not_held(signup, shared_cache):
    signup()
    for _ in range(3):
        assert auth.customer_key_lookup("ik_nosuchprefix_" + "x" * 32) is None
    assert all(held.version for held in auth._held.values())
    assert auth.credentials.key_digest("ik_nosuchprefix_" + "x" * 32) not in auth._held


def test_a_flushed_cache_starts_a_new_version(signup_committed, shared_cache):
    customer = signup_committed()
    assert _license(customer).status_code == 200
    before = data_version.current()
    shared_cache.delete(data_version.CACHE_KEY)  # Redis restarted (it keeps nothing)
    assert data_version.current() not in (None, before)
    with CaptureQueriesContext(connection) as queries:
        assert _license(customer).status_code == 200
    assert queries.captured_queries  # read again


def test_a_held_key_lasts_at_most_api_key_cache_seconds(
    signup_committed, shared_cache, monkeypatch
):
    customer = signup_committed()
    assert _license(customer).status_code == 200
    clock = auth.time.monotonic() + 61  # past the default 60 s
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock)
    with CaptureQueriesContext(connection) as queries:
        assert _license(customer).status_code == 200
    assert queries.captured_queries


def test_without_a_shared_cache_every_request_reads_the_database(signup, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    customer = signup()
    assert data_version.current() is None
    assert _license(customer).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert _license(customer).status_code == 200
    assert len(queries.captured_queries) == 1


def test_with_the_cache_down_keys_are_read_from_the_database(signup):
    down = {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    customer = signup()
    with override_settings(CACHES=down):
        assert data_version.current() is None
        assert _license(customer).status_code == 200
        Customer.objects.filter(customer_id=customer.id).update(company_name="Renamed Ltd")
        assert _license(customer).json()["decoded"]["customerName"] == "Renamed Ltd"


@pytest.mark.django_db(transaction=True)
def test_a_key_read_while_its_revocation_commits_is_not_kept(signup, shared_cache):
    """The writer's transaction is open: a reader elsewhere still sees the old row and may
    hold it, but the commit changes the version again, so nothing read before survives."""
    customer = signup()
    assert _license(customer).status_code == 200
    revoked, commit = threading.Event(), threading.Event()

    def revoke_in_open_transaction():
        try:
            with transaction.atomic():
                CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(
                    revoked_at="2026-01-01T00:00:00Z"
                )
                revoked.set()
                commit.wait(10)
        finally:
            connection.close()

    writer = threading.Thread(target=revoke_in_open_transaction)
    writer.start()
    assert revoked.wait(10)
    # while it is uncommitted, this process reads (and holds) the key as it was
    assert _license(customer).status_code == 200
    commit.set()
    writer.join(10)
    # then once committed the next request is refused
    assert _license(customer).status_code == 401


@pytest.mark.parametrize(
    ("sql", "changes"),
    [
        ('INSERT INTO "customers_customerapikey" ("prefix") VALUES (%s)', True),
        ('UPDATE "customers_customerapikey" SET "revoked_at" = %s WHERE "id" = %s', True),
        (
            'UPDATE "customers_customerapikey" SET "last_used_at" = %s '
            'WHERE "customers_customerapikey"."id" = %s',
            False,
        ),
        (
            'UPDATE "customers_customerapikey" SET "last_used_at" = %s, "revoked_at" = %s '
            'WHERE "id" = %s',
            True,
        ),
        # a subquery in SET has a WHERE of its own: the assignments after it still count
        (
            'UPDATE "customers_customerapikey" SET "last_used_at" = (SELECT U0."created_at" '
            'FROM "customers_customerapikey" U0 WHERE U0."id" = %s), "revoked_at" = %s '
            'WHERE "customers_customerapikey"."id" = %s',
            True,
        ),
        ('DELETE FROM "subscriptions_subscription" WHERE "id" IN (%s)', True),
        ('update "licensing_licenserevocation" set "reason" = %s', True),
        # written by hand: unquoted, lower case, commented, qualified, in a CTE, truncated
        ("update customers_customerapikey set revoked_at = now()", True),
        ("/* by hand */ DELETE FROM customers_customer WHERE id = 1", True),
        ("-- fix\nUPDATE public.subscriptions_subscription SET plan = 'pro'", True),
        ('UPDATE "public"."customers_customer" SET "is_active" = false', True),
        ("WITH gone AS (DELETE FROM customers_customerapikey RETURNING id) SELECT 1", True),
        ('TRUNCATE "licensing_licenserevocation", "customers_customer" CASCADE', True),
        ('SELECT * FROM "customers_customer" FOR UPDATE', False),
        ('INSERT INTO "usage_usagereport" ("customer_id") VALUES (%s)', False),
    ],
)
def test_which_statements_change_the_version(sql, changes):
    assert data_version.changes_watched(sql) is changes


def test_a_revoked_keys_requests_do_not_use_up_its_customers_rate_limit(
    signup_committed, shared_cache, settings
):
    settings.RATE_LIMIT_CUSTOMER = "5/h"
    customer = signup_committed()
    old_client = customer.client
    assert _license(customer).status_code == 200  # 1, and the key is held
    rotated = old_client.post(f"/api/customers/{customer.id}/api-keys/rotate", format="json")
    assert rotated.status_code in (200, 201)  # 2
    # when an instance keeps sending the revoked key
    for _ in range(10):
        assert old_client.get(f"/api/licenses/{customer.id}").status_code == 401
    # then at most the first of those was counted (it was held here), and the new key still
    # has the rest of the limit
    new_client = APIClient(HTTP_X_API_KEY=rotated.json()["api_key"])
    answers = [new_client.get(f"/api/licenses/{customer.id}").status_code for _ in range(2)]
    assert answers == [200, 200]


def _lookup(raw_key):
    return auth.customer_key_lookup(raw_key)


def test_a_revocation_while_redis_is_unreachable_is_not_missed(
    signup_committed, shared_cache, monkeypatch
):
    """The version could not be changed: what this process held before is not trusted after
    the outage, and the change is made again once Redis answers."""
    customer = signup_committed()
    assert _lookup(customer.key) is not None  # held
    failing = redis.Redis.set

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(redis.Redis, "set", unreachable)
    with transaction.atomic():
        CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(
            revoked_at=timezone.now()
        )
    monkeypatch.setattr(redis.Redis, "set", failing)
    # then, Redis back with the version it had, the key is refused
    assert _lookup(customer.key) is None


def test_a_change_lost_at_commit_leaves_the_version_pending_until_it_expires(
    signup_committed, shared_cache, django_capture_on_commit_callbacks
):
    customer = signup_committed()
    assert _lookup(customer.key) is not None  # held

    def fails():
        raise RuntimeError("an earlier on-commit hook failed")

    def revoke_after_a_failing_hook():
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            transaction.on_commit(fails)
            CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(
                revoked_at=timezone.now()
            )

    # when the commit's hooks stop before ours (Django drops the rest after a failure)
    with pytest.raises(RuntimeError):
        revoke_after_a_failing_hook()
    # then nothing is kept while the write is pending: the key is read, and refused
    assert data_version.current() is None
    assert _lookup(customer.key) is None
    # and once the pending write expires the version is trusted again (a new one)
    client = shared_cache._cache.get_client(write=True)
    key = shared_cache.make_and_validate_key(data_version.CACHE_KEY)
    client.delete(f"{key}:pending")
    assert data_version.current() is not None
    assert _lookup(customer.key) is None


def test_a_read_inside_a_rolled_back_write_is_not_kept(
    signup_committed, shared_cache, django_capture_on_commit_callbacks
):
    customer = signup_committed()
    with django_capture_on_commit_callbacks(execute=True):  # revoked, and committed
        CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(
            revoked_at=timezone.now()
        )
    assert data_version.current() is not None  # settled: a lookup now would be kept
    seen = []

    def unrevoke_look_up_and_roll_back():
        with transaction.atomic():
            keys = CustomerApiKey.objects.filter(customer__customer_id=customer.id)
            keys.update(revoked_at=None)
            seen.append(_lookup(customer.key))
            raise RuntimeError("rolled back")

    # when a transaction un-revokes the key, looks it up, and rolls back
    with pytest.raises(RuntimeError):
        unrevoke_look_up_and_roll_back()
    assert seen[0] is not None
    # then what it read was not kept: the key is still revoked
    assert _lookup(customer.key) is None


def test_a_subquery_assignment_beside_last_used_at_counts(signup_committed, shared_cache):
    customer = signup_committed()
    assert _lookup(customer.key) is not None  # held
    keys = CustomerApiKey.objects.filter(customer__customer_id=customer.id)
    keys.update(last_used_at=Subquery(keys.values("created_at")[:1]), revoked_at=timezone.now())
    assert _lookup(customer.key) is None


@pytest.mark.django_db(transaction=True)
def test_another_commit_does_not_end_a_write_still_pending(signup):
    """A revocation's transaction is open when another write commits; then the revocation
    commits but its own change of the version is lost (an earlier on-commit hook failed).
    The other commit must not have ended the revocation's pending state: nothing read while
    it was open may be kept."""
    with override_settings(CACHES=_shared_caches()):
        caches["default"].delete(data_version.CACHE_KEY)
        customer, other = signup(), signup()
        assert _lookup(customer.key) is not None  # held, under a settled version
        written, finish, errors = threading.Event(), threading.Event(), []

        def revoke_then_lose_the_change():
            def fails():
                raise RuntimeError("an earlier on-commit hook failed")

            try:
                with transaction.atomic():
                    transaction.on_commit(fails)
                    CustomerApiKey.objects.filter(customer__customer_id=customer.id).update(
                        revoked_at=timezone.now()
                    )
                    written.set()
                    finish.wait(10)
            except RuntimeError as error:
                errors.append(error)
            finally:
                connection.close()

        writer = threading.Thread(target=revoke_then_lose_the_change)
        writer.start()
        assert written.wait(10)
        if connection.vendor == "postgresql":
            # when another write commits meanwhile, and the key is looked up (the revocation
            # is not committed yet: the key is live)
            Customer.objects.filter(customer_id=other.id).update(company_name="Other Ltd")
            assert _lookup(customer.key) is not None
        else:  # SQLite: one writer at a time, so no other write can commit meanwhile
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 200")
            try:
                with pytest.raises(OperationalError, match="locked"):
                    Customer.objects.filter(customer_id=other.id).update(company_name="X")
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA busy_timeout = 20000")
        finish.set()
        writer.join(10)
        assert errors  # the revocation committed, its change of the version lost
        # then the next lookup reads the revocation
        assert _lookup(customer.key) is None


def _shared_caches() -> dict:
    import os

    return {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"billing-test-{os.getpid()}-overlap",
        }
    }
