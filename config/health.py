"""Health: two questions, two endpoints (and the guide's /health).

- GET /health/live: does the process answer? Checks nothing else, so a database outage does
  not make Kubernetes restart every pod (the liveness probe).
- GET /health/ready: can it serve? The database, Redis and the Celery broker; 503 naming
  what is down (the readiness probe takes the pod out of the service meanwhile). It also
  reports whether workers are consuming (their heartbeat), without failing on it: a wedged
  worker is the worker's own health check's business (`manage.py worker_health`), and taking
  the web pods out of service would not bring it back.
- GET /health: the guide's endpoint, the database and Redis, as before.
"""

from __future__ import annotations

import time

import redis
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from config.celery import HEARTBEAT_CACHE_KEY


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the message says which
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _in_process() -> bool:
    return bool(current_app.conf.task_always_eager) or current_app.conf.broker_url.startswith(
        "memory://"
    )


def _check_broker() -> str | None:
    if _in_process():
        return None
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises the transport's own errors
        return f"{type(exc).__name__}: {exc}"
    return None


def worker_heartbeat_age() -> float | None:
    """Seconds since a worker last ran the heartbeat task (None: never, or not readable)."""
    try:
        beat = cache.get(HEARTBEAT_CACHE_KEY)
    except Exception:  # a cache outage is reported by the Redis check
        return None
    return None if beat is None else max(0.0, time.time() - float(beat))


def workers_status() -> dict:
    if _in_process():
        return {"status": "in-process", "message": "No broker: tasks run in the web process."}
    age = worker_heartbeat_age()
    fresh = age is not None and age <= settings.WORKER_HEARTBEAT_STALE_SECONDS
    return {
        "status": "ok" if fresh else "stale",
        "heartbeat_age_seconds": None if age is None else round(age, 1),
        "stale_after_seconds": settings.WORKER_HEARTBEAT_STALE_SECONDS,
    }


def _unavailable(failures: dict[str, str], **extra) -> JsonResponse:
    return JsonResponse(
        {
            "status": "unavailable",
            "version": settings.VERSION,
            "error": "Service unavailable",
            "message": f"{', '.join(failures)} {'is' if len(failures) == 1 else 'are'} down.",
            "details": failures,
            **extra,
        },
        status=503,
    )


@require_GET
def health(request) -> JsonResponse:
    failures = {
        name: error
        for name, error in (("database", _check_database()), ("redis", _check_redis()))
        if error
    }
    if failures:
        return _unavailable(failures)
    return JsonResponse(
        {
            "status": "ok",
            "version": settings.VERSION,
            "redis": "ok" if settings.REDIS_URL else "not configured (tasks run in-process)",
        }
    )


@require_GET
def live(request) -> JsonResponse:
    return JsonResponse({"status": "ok", "version": settings.VERSION})


@require_GET
def ready(request) -> JsonResponse:
    checks = (("database", _check_database()), ("redis", _check_redis()))
    checks += (("broker", _check_broker()),)
    failures = {name: error for name, error in checks if error}
    workers = workers_status()
    if failures:
        return _unavailable(failures, workers=workers)
    return JsonResponse(
        {
            "status": "ok",
            "version": settings.VERSION,
            "database": "ok",
            "redis": "ok" if settings.REDIS_URL else "not configured",
            "broker": "in-process" if _in_process() else "ok",
            "workers": workers,
        }
    )
