"""A version of the data that authorizes requests, shared by every process through the cache.

Processes may keep copies of such data (a customer key's principal: the key, its customer,
subscription and revocation) as long as the version they were read under is still the
current one. Every statement Django sends that writes to a watched table changes the
version, whatever code sent it (the ORM's `save()`, a queryset's `update()` or `delete()`,
raw SQL through Django's cursor, the admin, a migration): the check sits on the database
connection (an execute wrapper), so a write path added later cannot forget it. Any statement
that is not a plain SELECT and names a watched table counts, quoted or not; the one write
that does not is an UPDATE that sets only ignored columns to parameters (a key's
last_used_at).

The version changes twice per write: when the statement has run, the write is entered as
*pending* (an entry of its own, for at most PENDING_SECONDS), and nothing is kept while any
write is pending: this process and every other read the database; when its transaction
commits, its entry goes and a new settled version is set, so nothing read before the commit
survives it. Another write's commit does not end this one's pending state. If the commit's
change is lost (an earlier on-commit hook failed, the process died), the entry expires. A
rollback leaves only needless reads.

When Redis cannot be reached, nothing is kept (`current()` answers None and callers read the
database), and the process does not trust what it kept before: its own versions carry a
count of the outages it has seen. A change of the version that failed is made again at the
next chance. A write that does not pass through Django (psql by hand) is not seen: the
copies' own lifetime bounds it (`customers.auth`), as it bounds a write made while Redis was
unreachable from a process that has not noticed the outage.

Within one HTTP request the version is read once (the first `current()`) and remembered
until the request ends; a write in the request makes it pending for the rest of it. Outside
requests (tasks, commands) each `current()` reads it.

Without a shared cache (the embedded default's in-memory one is per process) there is no
version: `current()` answers None and callers read the database.
"""

from __future__ import annotations

import functools
import re
import threading
import time
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

# How long a write that never reports its commit (an earlier on-commit hook failed, the
# process died) keeps the version pending: longer than a transaction that calls Stripe.
PENDING_SECONDS = 120

# Table -> columns whose writes do not change what is authorized (e.g. a key's last_used_at,
# refreshed every few minutes by the key's own requests).
_watched: dict[str, frozenset[str]] = {}
_tables: re.Pattern | None = None  # any watched table's name, as a word
_COMMENTS = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*", re.DOTALL)
_PARAMETER_UPDATE = re.compile(
    r'UPDATE\s+"(?P<table>[^"]+)"\s+SET\s+'
    r'(?P<set>"[^"]+"\s*=\s*%s(?:\s*,\s*"[^"]+"\s*=\s*%s)*)\s+WHERE\s',
    re.IGNORECASE,
)
_SET_COLUMNS = re.compile(r'"([^"]+)"\s*=')


class _Process:
    outages = 0  # Redis errors this process has seen: part of every version it reads
    owed = False  # a change of the version failed and is to be made again


_process = _Process()


def current(*, along: Along | None = None) -> str | None:
    """The current version, or None when there is none to trust (no shared cache, the cache
    is down, or a write is pending): then callers read the database and keep nothing.

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


def _client():
    """The shared cache's Redis client and the version's key there (None off Redis)."""
    cache = caches["default"]
    backend = getattr(cache, "_cache", None)
    if not isinstance(cache, RedisCache) or backend is None:
        return None, None
    key = cache.make_and_validate_key(CACHE_KEY)
    return backend.get_client(key, write=True), key


def _read(along: Along | None = None) -> str | None:
    client, key = _client()
    if client is None:
        return None
    if _process.owed:  # a settled version this process failed to set: set one now
        _settle()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(key)
        pipe.zcount(_pending_key(key), time.time(), "+inf")
        answer = along(pipe) if along is not None else None
        stored, pending, *answers = pipe.execute()
        if answer is not None:
            answer(answers)
        if stored is None:  # never set, or evicted/flushed: start a new one
            client.set(key, uuid.uuid4().hex, nx=True)
            stored = client.get(key)
    except redis.RedisError:
        _process.outages += 1
        return None
    if stored is None or pending:
        return None
    return f"{stored.decode()}.{_process.outages}"


def _pending_key(key: str) -> str:
    return f"{key}:pending"


def _pend(token: str) -> None:
    """A write's statement has run: pending (nothing is kept) until its commit settles it,
    or for PENDING_SECONDS if that is lost. One entry per write, so another write's commit
    does not end this one's."""

    def commands(pipe, key: str) -> None:
        now = time.time()
        pipe.zadd(_pending_key(key), {token: now + PENDING_SECONDS})
        pipe.zremrangebyscore(_pending_key(key), "-inf", now)

    _change(commands, settles=False)


def _settle(token: str | None = None) -> None:
    """A new settled version (and the write `token` no longer pending): every copy read
    under an earlier one is out of date."""

    def commands(pipe, key: str) -> None:
        if token is not None:
            pipe.zrem(_pending_key(key), token)
        pipe.set(key, uuid.uuid4().hex)

    _change(commands, settles=True)


def _change(commands: Callable[[Any, str], None], *, settles: bool) -> None:
    """Send a change of the version (in one MULTI when it `settles`); on a Redis error the
    process counts an outage and owes a settled version."""
    client, key = _client()
    if client is None:
        return
    if _request.inside:  # nothing more is kept in this request
        _request.version = None
    try:
        pipe = client.pipeline(transaction=settles)
        commands(pipe, key)
        pipe.execute()
    except redis.RedisError:
        _process.outages += 1
        _process.owed = True
    else:
        if settles:
            _process.owed = False


def _request_start(**kwargs) -> None:
    _request.inside, _request.version = True, _UNREAD


def _request_end(**kwargs) -> None:
    _request.inside, _request.version = False, _UNREAD


request_started.connect(_request_start, dispatch_uid="core.data_version.start")
request_finished.connect(_request_end, dispatch_uid="core.data_version.end")


def watch(db_table: str, *, ignore_columns: Iterable[str] = ()) -> None:
    """Writes to `db_table` change the version (except UPDATEs of `ignore_columns` only)."""
    global _tables
    _watched[db_table] = frozenset(ignore_columns)
    names = "|".join(re.escape(name) for name in sorted(_watched, key=len, reverse=True))
    _tables = re.compile(rf"\b(?:{names})\b", re.IGNORECASE)
    connection_created.connect(_install, dispatch_uid="core.data_version")
    for connection in connections.all(initialized_only=True):  # opened before this call
        _install(None, connection)


def changes_watched(sql: str) -> bool:
    """Whether the statement may write to a watched table (what the execute wrapper asks):
    any statement but a plain SELECT that names one, except an UPDATE setting only that
    table's ignored columns to parameters."""
    if _tables is None:
        return False
    leading = _COMMENTS.match(sql)  # always matches (possibly nothing)
    statement = sql[leading.end() :] if leading else sql
    if _tables.search(statement) is None:
        return False
    if ";" in statement.rstrip().rstrip(";"):
        return True  # several statements (written by hand): any may write
    if statement[:6].upper() == "SELECT":
        return False
    update = _PARAMETER_UPDATE.match(statement)
    if update is not None and update.group("table") in _watched:
        ignored = _watched[update.group("table")]
        columns = set(_SET_COLUMNS.findall(update.group("set")))
        if columns <= ignored:  # its WHERE only chooses rows: it writes nothing else
            return False
    return True


def _wrapper(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if isinstance(sql, str) and changes_watched(sql):
        token = uuid.uuid4().hex
        _pend(token)
        transaction.on_commit(
            functools.partial(_settle, token), using=context["connection"].alias, robust=True
        )
    return result


def _install(sender, connection, **kwargs) -> None:
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)
