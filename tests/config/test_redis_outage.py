"""Redis away (the cache and the rate limits live there): public and customer-key endpoints
keep answering, signups are saved, /health/ready names Redis; when Redis returns, the cache
is used again. The Redis here is the test's own, stopped and started by the test."""

from __future__ import annotations

import pytest

from customers.models import Customer
from tests.helpers import customer_client
from tests.private_redis import private_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_redis(settings):
    previous = (settings.REDIS_URL, settings.CACHES)
    with private_redis() as server:
        settings.REDIS_URL = server.url
        settings.CACHES = {
            "default": {
                "BACKEND": "config.cache.FailOpenRedisCache",
                "LOCATION": server.url,
                "KEY_PREFIX": "billing-test-outage",
            }
        }
        yield server
        # the suite's own cache again before this Redis goes (the suite clears its keys after)
        settings.REDIS_URL, settings.CACHES = previous


def _signup(api_client, email: str):
    return api_client.post(
        "/api/customers/signup",
        {"email": email, "company_name": "Down", "full_name": "D", "password": "x" * 12},
        format="json",
    )


def test_endpoints_keep_answering_while_redis_is_down(api_client, cache_redis, settings):
    # given a customer signed up while Redis was up (its license is in the cache)
    before = _signup(api_client, "up@example.com")
    assert before.status_code == 201
    key = before.json()["api_key"]
    customer_id = before.json()["customer"]["customer_id"]
    assert cache_redis.client().keys("billing-test-outage:*")

    # when Redis goes away
    cache_redis.stop()

    # then signup is saved, the license and the public key are served, and readiness says why
    during = _signup(api_client, "down@example.com")
    assert during.status_code == 201, during.content
    assert Customer.objects.filter(email="down@example.com").exists()
    assert customer_client(key).get(f"/api/licenses/{customer_id}").status_code == 200
    assert api_client.get("/api/licenses/public-key").status_code == 200
    response = customer_client(key).post(
        "/api/usage/report",
        {"customer_id": customer_id, "instance_id": "i-1", "active_devices": 1,
         "total_devices": 1},
        format="json",
    )  # fmt: skip
    assert response.status_code in (200, 201), response.content
    ready = api_client.get("/health/ready")
    assert ready.status_code == 503
    assert "redis" in ready.json()["details"]

    # when Redis comes back, the cache fills again
    cache_redis.start()
    assert customer_client(key).get(f"/api/licenses/{customer_id}").status_code == 200
    assert cache_redis.client().keys("billing-test-outage:*")
    assert api_client.get("/health/ready").status_code == 200


def test_rate_limits_fail_open_while_redis_is_down(api_client, cache_redis, settings):
    settings.RATE_LIMIT_VERIFICATION = "2/15m"
    assert [api_client.get("/api/licenses/public-key").status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    cache_redis.stop()
    assert [api_client.get("/api/licenses/public-key").status_code for _ in range(3)] == [200] * 3
