"""Workers' health through a real worker: the heartbeat it consumes is what /health/ready
reports and `manage.py worker_health` checks (a wedged worker answers `inspect ping` but
consumes nothing)."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from config.celery import HEARTBEAT_CACHE_KEY, app
from tests.deployments.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _cache_on_the_workers_redis(broker, settings):
    """The web process and the worker share the cache on Redis (as deployed); a run without
    REDIS_URL would otherwise keep this process's cache in memory."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": broker.url,
            "KEY_PREFIX": f"billing-test-health-{broker.queue}",
        }
    }


@pytest.mark.parametrize(("seconds_ago", "status"), [(5, "ok"), (1000, "stale")])
def test_readiness_reports_the_worker_heartbeat(api_client, broker, seconds_ago, status):
    cache.set(HEARTBEAT_CACHE_KEY, time.time() - seconds_ago, timeout=None)
    response = api_client.get("/health/ready")
    # the web pod stays ready either way: workers are reported, their own check fails
    assert response.status_code == 200
    assert response.json()["broker"] == "ok"
    assert response.json()["workers"]["status"] == status


def test_a_consuming_worker_keeps_worker_health_green(worker, broker, api_client):
    # given no heartbeat yet: the check fails
    cache.delete(HEARTBEAT_CACHE_KEY)
    with pytest.raises(CommandError):
        call_command("worker_health")

    # when a real worker consumes the heartbeat beat sends
    worker()
    app.tasks["config.worker_heartbeat_task"].apply_async(queue=broker.queue)

    # then the check passes and readiness reports the workers consuming
    wait_for(lambda: cache.get(HEARTBEAT_CACHE_KEY), timeout=20, what="the heartbeat")
    call_command("worker_health")
    assert api_client.get("/health/ready").json()["workers"]["status"] == "ok"
