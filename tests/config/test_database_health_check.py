"""A reused PostgreSQL connection is checked before each request's first query by reading its
socket (config/postgresql): a live idle connection passes without a round trip; one the
server dropped is replaced, as Django's `SELECT 1` check would replace it."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def second_connection():
    """Another connection to the suite's PostgreSQL database, through our backend."""
    if not POSTGRES:
        # The machine always runs PostgreSQL: check the backend there on a SQLite run too.
        params = {"NAME": "postgres", "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}
    else:
        params = {k: connection.settings_dict[k] for k in ("NAME", "USER", "HOST", "PORT")}
        params["PASSWORD"] = connection.settings_dict.get("PASSWORD", "")
    # A handler of its own ("default" is the name it needs), apart from the suite's.
    handler = ConnectionHandler(
        {"default": {"ENGINE": "config.postgresql", "CONN_HEALTH_CHECKS": True, **params}}
    )
    checked = handler["default"]
    checked.ensure_connection()
    yield checked
    checked.close()


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_settings_use_this_backend_on_postgresql(settings):
    if POSTGRES:
        assert settings.DATABASES["default"]["ENGINE"] == "config.postgresql"
        assert connection.vendor == "postgresql"


def test_a_live_idle_connection_is_usable(second_connection):
    _backend_pid(second_connection)
    assert second_connection.is_usable()
    assert second_connection.is_usable()


def test_a_connection_the_server_dropped_is_not_usable_and_is_replaced(second_connection):
    pid = _backend_pid(second_connection)
    killer = ConnectionHandler({"default": dict(second_connection.settings_dict)})["default"]
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    killer.close()
    deadline = time.monotonic() + 5
    while second_connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)  # the server's goodbye is on its way
    # then the check says so, and the next request's first query gets a new connection
    assert not second_connection.is_usable()
    second_connection.health_check_done = False
    second_connection.close_if_health_check_failed()
    assert _backend_pid(second_connection) != pid


def test_inside_a_transaction_the_check_still_asks_the_server(second_connection):
    with second_connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT 1")
    assert second_connection.is_usable()
    with second_connection.cursor() as cursor:
        cursor.execute("ROLLBACK")


def test_the_idle_check_sends_nothing_to_the_server(second_connection, monkeypatch):
    _backend_pid(second_connection)

    def no_statements(*args, **kwargs):
        raise AssertionError("the health check ran a statement")

    # Django's own check runs SELECT 1 through a psycopg cursor: ours opens none.
    monkeypatch.setattr(second_connection.connection, "cursor", no_statements)
    monkeypatch.setattr(second_connection.connection, "execute", no_statements)
    assert second_connection.is_usable()
