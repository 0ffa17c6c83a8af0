"""Liveness and readiness: /health/live answers while the process does; /health/ready says
which dependency is down; `worker_health` fails when workers stop consuming."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from config.celery import HEARTBEAT_CACHE_KEY, app
from tests.deployments.support import celery_publishing_to

pytestmark = pytest.mark.django_db


def test_liveness_needs_no_database_and_no_redis(api_client, settings, django_assert_num_queries):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with django_assert_num_queries(0):
        response = api_client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": settings.VERSION}


def test_readiness_in_process_mode(api_client):
    response = api_client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert (body["database"], body["broker"]) == ("ok", "in-process")
    assert body["workers"]["status"] == "in-process"


def test_readiness_names_redis_when_it_is_down(api_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = api_client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert set(body["details"]) == {"redis"}
    assert body["message"] == "redis is down."


def test_readiness_names_the_broker_when_it_is_down(api_client):
    with celery_publishing_to("redis://127.0.0.1:1/0", "nowhere"):
        response = api_client.get("/health/ready")
    assert response.status_code == 503
    assert set(response.json()["details"]) == {"broker"}


def _heartbeat(seconds_ago: float) -> None:
    cache.set(HEARTBEAT_CACHE_KEY, time.time() - seconds_ago, timeout=None)


def test_worker_health_passes_with_a_fresh_heartbeat(capsys):
    _heartbeat(5)
    call_command("worker_health")
    assert "Workers consuming" in capsys.readouterr().out


def test_worker_health_fails_with_a_stale_heartbeat(settings):
    _heartbeat(settings.WORKER_HEARTBEAT_STALE_SECONDS + 60)
    with pytest.raises(CommandError, match="workers are not consuming"):
        call_command("worker_health")


def test_worker_health_fails_without_any_heartbeat():
    cache.delete(HEARTBEAT_CACHE_KEY)
    with pytest.raises(CommandError, match="No worker heartbeat yet"):
        call_command("worker_health")


def test_the_heartbeat_task_records_the_time():
    cache.delete(HEARTBEAT_CACHE_KEY)
    app.tasks["config.worker_heartbeat_task"].delay()
    assert time.time() - cache.get(HEARTBEAT_CACHE_KEY) < 5


def test_beat_sends_the_heartbeat_often_enough(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]
    assert entry["task"] == "config.worker_heartbeat_task"
    assert entry["schedule"] * 3 <= settings.WORKER_HEARTBEAT_STALE_SECONDS
