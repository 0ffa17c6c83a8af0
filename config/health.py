"""GET /health: is the service able to serve? Checks the database and, if configured, Redis."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


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


@require_GET
def health(request) -> JsonResponse:
    failures = {
        name: error
        for name, error in (("database", _check_database()), ("redis", _check_redis()))
        if error
    }
    if failures:
        return JsonResponse(
            {
                "status": "unavailable",
                "version": settings.VERSION,
                "error": "Service unavailable",
                "message": f"{', '.join(failures)} {'is' if len(failures) == 1 else 'are'} down.",
                "details": failures,
            },
            status=503,
        )
    return JsonResponse(
        {
            "status": "ok",
            "version": settings.VERSION,
            "redis": "ok" if settings.REDIS_URL else "not configured (tasks run in-process)",
        }
    )
