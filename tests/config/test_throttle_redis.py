"""On Redis the rate limits count a request in one pipelined round trip (SET NX EX, INCR,
GET), not one call each; and the cache reuses one Redis client instead of building one (with
its ~170 response callbacks) per call."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import redis
from django.core.cache import caches

from tests.usage.helpers import Instance, now_s, report_body


@pytest.fixture
def redis_cache(settings):
    location = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": location,
            "KEY_PREFIX": "throttle-test",
        }
    }
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()


def test_a_rate_limited_request_counts_in_one_pipelined_round_trip(
    db, redis_cache, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # given a customer instance and its rate limit of 2 reports an hour, counted on Redis
    settings.RATE_LIMIT_USAGE = "2/h"
    with django_capture_on_commit_callbacks(execute=True):  # committed: the version settles
        instance = Instance()
    client = instance.client
    pipelines = []
    execute = redis.client.Pipeline.execute

    def counted(pipe, *args, **kwargs):
        pipelines.append(len(pipe.command_stack))
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)

    # when it reports three times
    answers = [
        client.post(
            "/api/usage/report",
            report_body(instance.customer_id, at=now_s() - timedelta(minutes=5 - n)),
            format="json",
        )
        for n in range(3)
    ]

    # then the third is refused, and each request was counted in one pipeline (Django's cache
    # calls would make a round trip each): the first request reads the data version (two
    # commands), then its key, then counts (three); the next ones, whose key the process
    # holds, read the version and count in one round trip of five (customers.auth)
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert answers[2].status_code == 429
    assert pipelines == [2, 3, 5, 5]


def test_the_cache_reuses_one_redis_client(redis_cache):
    # given the cache on Redis; when it is used for several calls
    redis_cache.set("a", 1)
    redis_cache.get("a")
    first = redis_cache._cache.get_client(write=True)

    # then every call goes through the same client (and its one connection pool)
    assert redis_cache._cache.get_client(write=True) is first
    assert redis_cache._cache.get_client() is first
    assert redis_cache.get("a") == 1
