"""On Redis the rate limits count a request in one pipelined round trip (SET NX EX, INCR,
GET), not one call each: the path taken is the pipeline's, through the process's one client."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.cache import caches

from config import api
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
    api._REDIS_CLIENTS.clear()
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()
    api._REDIS_CLIENTS.clear()


def test_a_rate_limited_request_counts_in_one_pipelined_round_trip(db, redis_cache, settings):
    # given a customer instance and its rate limit of 2 reports an hour, counted on Redis
    settings.RATE_LIMIT_USAGE = "2/h"
    instance = Instance()
    client = instance.client

    # when it reports three times
    answers = [
        client.post(
            "/api/usage/report",
            report_body(instance.customer_id, at=now_s() - timedelta(minutes=5 - n)),
            format="json",
        )
        for n in range(3)
    ]

    # then the third is refused, and the counting went through the process's one pipelined
    # client (Django's cache calls would build a client and make a round trip each)
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert answers[2].status_code == 429
    assert list(api._REDIS_CLIENTS) == [id(redis_cache._cache)]
