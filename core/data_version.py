"""A version of the data that authorizes requests, shared by every process through the cache.

Processes may keep copies of such data (a customer key's principal: the key, its customer,
subscription and revocation) as long as the version they were read under is still the
current one. Every INSERT, UPDATE or DELETE that Django sends to a watched table changes the
version, whatever code sent it (the ORM's `save()`, a queryset's `update()` or `delete()`,
raw SQL through Django's cursor, the admin, a migration): the check sits on the database
connection (an execute wrapper), so a write path added later cannot forget it.

The version changes twice per write: when the statement has run, so that this process and
any other rereads the rows (a read inside the writer's transaction sees the new rows; one
outside it rereads the old ones and keeps them under that version), and again when the
transaction commits, so that nothing read before the commit survives it. A rollback leaves
only a needless reread. A write that does not pass through Django (psql by hand) is not
seen: the copies' own lifetime bounds it (`customers.auth`).

Within one HTTP request the version is read once (the first `current()`) and remembered
until the request ends; a write in the request sets the new version it made. Outside
requests (tasks, commands) each `current()` reads it.

Without a shared cache (the embedded default's in-memory one is per process) there is no
version: `current()` answers None and callers read the database.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.signals import request_finished, request_started
from django.db import connections, transaction
from django.db.backends.signals import connection_created

# Commands a caller adds to the round trip that reads the version (`current(along=...)`);
# what it returns is handed their answers, in order.
Along = Callable[[Any], Callable[[list], None]]

CACHE_KEY = "data-version"
_UNREAD = object()


class _Request(threading.local):
    """The version as this thread's current request read it (`_UNREAD` outside requests)."""

    version: object = _UNREAD
    inside = False


_request = _Request()

# Table -> columns whose writes do not change what is authorized (e.g. a key's last_used_at,
# refreshed every few minutes by the key's own requests).
_watched: dict[str, frozenset[str]] = {}
_WRITE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"([^"]+)"', re.IGNORECASE)
_SET_COLUMNS = re.compile(r'"([^"]+)"\s*=')


def shared() -> bool:
    """Whether the cache is shared by every process (Redis), so a version means something."""
    return isinstance(caches["default"], RedisCache)


def current(*, along: Along | None = None) -> str | None:
    """The current version, or None when there is none to trust (no shared cache, or the
    cache is down): then callers read the database.

    `along` adds Redis commands to the same round trip (a request's rate-limit counters), so
    checking the version costs no round trip of its own; they run only if the version is
    read now (not already read in this request) and the cache is up.
    """
    if _request.inside and _request.version is not _UNREAD:
        return _request.version  # type: ignore[return-value]
    version = _read(along)
    if _request.inside:
        _request.version = version
    return version


def _read(along: Along | None = None) -> str | None:
    if not shared():
        return None
    cache = caches["default"]
    backend = getattr(cache, "_cache", None)
    if along is not None and backend is not None:
        key = cache.make_and_validate_key(CACHE_KEY)
        try:
            pipe = backend.get_client(key).pipeline(transaction=False)
            pipe.get(key)
            answer = along(pipe)
            stored, *answers = pipe.execute()
        except redis.RedisError:
            return None  # the cache is down: read the database
        answer(answers)
        if stored is not None:
            return backend._serializer.loads(stored)
    version = cache.get(CACHE_KEY)
    if version is None:  # never set, or evicted/flushed: start a new one
        cache.add(CACHE_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(CACHE_KEY)
    return version


def bump() -> None:
    """A new version: every copy read under an earlier one is out of date."""
    if shared():
        version = uuid.uuid4().hex
        caches["default"].set(CACHE_KEY, version, timeout=None)
        if _request.inside:
            _request.version = version


def _request_start(**kwargs) -> None:
    _request.inside, _request.version = True, _UNREAD


def _request_end(**kwargs) -> None:
    _request.inside, _request.version = False, _UNREAD


request_started.connect(_request_start, dispatch_uid="core.data_version.start")
request_finished.connect(_request_end, dispatch_uid="core.data_version.end")


def watch(db_table: str, *, ignore_columns: Iterable[str] = ()) -> None:
    """Writes to `db_table` change the version (except UPDATEs of `ignore_columns` only)."""
    _watched[db_table] = frozenset(ignore_columns)
    connection_created.connect(_install, dispatch_uid="core.data_version")
    for connection in connections.all(initialized_only=True):  # opened before this call
        _install(None, connection)


def changes_watched(sql: str) -> bool:
    """Whether the statement writes to a watched table (what the execute wrapper asks)."""
    match = _WRITE.match(sql)
    if match is None or match.group(1) not in _watched:
        return False
    ignored = _watched[match.group(1)]
    if ignored and sql.lstrip()[:6].upper() == "UPDATE":
        assignments = sql.split(" SET ", 1)[-1].split(" WHERE ", 1)[0]
        columns = set(_SET_COLUMNS.findall(assignments))
        return not columns or not columns <= ignored
    return True


def _wrapper(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if isinstance(sql, str) and changes_watched(sql):
        bump()
        transaction.on_commit(bump, using=context["connection"].alias)
    return result


def _install(sender, connection, **kwargs) -> None:
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)
