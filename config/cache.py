"""The cache on Redis, failing open: a Redis outage must not fail a request.

Every use of the cache here is an optimisation (a signed license, price ids, the revocation
list) or a rate-limit counter; the database is the truth. So while Redis is away a read
misses, a write is skipped, and `add` (used as a lock) reports "not added", with a warning in
the log at most every 30 s per process; `/health/ready` says Redis is down. When Redis comes
back the cache fills again by itself.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 30.0
_warned_at = 0.0
_warned_lock = threading.Lock()
# A down Redis should cost a request milliseconds, not the client's default of no timeout.
SOCKET_TIMEOUT_SECONDS = 0.5


def warn_cache_down(exc: BaseException) -> None:
    global _warned_at
    with _warned_lock:
        now = time.monotonic()
        if now - _warned_at < WARN_EVERY_SECONDS:
            return
        _warned_at = now
    logger.warning("Cache (Redis) unavailable, continuing without it: %s", exc)


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django builds a new `redis.Redis` (and its ~170 response callbacks) for every cache
    call; one per connection pool is enough: the pool underneath is shared and fork-aware."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class FailOpenRedisCache(RedisCache):
    def __init__(self, server, params):
        options = params.setdefault("OPTIONS", {})
        options.setdefault("socket_timeout", SOCKET_TIMEOUT_SECONDS)
        options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT_SECONDS)
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient

    def _open(self, operation, fallback):
        try:
            return operation()
        except redis.RedisError as exc:
            warn_cache_down(exc)
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._open(
            lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version), False
        )

    def get(self, key, default=None, version=None):
        return self._open(
            lambda: super(FailOpenRedisCache, self).get(key, default, version), default
        )

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._open(
            lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version), None
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._open(
            lambda: super(FailOpenRedisCache, self).touch(key, timeout, version), False
        )

    def delete(self, key, version=None):
        return self._open(lambda: super(FailOpenRedisCache, self).delete(key, version), False)

    def get_many(self, keys, version=None):
        return self._open(lambda: super(FailOpenRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._open(lambda: super(FailOpenRedisCache, self).has_key(key, version), False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._open(
            lambda: super(FailOpenRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def delete_many(self, keys, version=None):
        return self._open(lambda: super(FailOpenRedisCache, self).delete_many(keys, version), None)
