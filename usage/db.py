"""Prepared statements for the usage app's hot statements on PostgreSQL."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
from django.db import connection
from psycopg.types.numeric import Int8


def prepared_cursor():
    """On PostgreSQL, a cursor (Django's wrapper: its execute wrappers and query log apply)
    whose statements are prepared once per connection and sent with their parameters apart:
    the hot statements on the partitioned report table (a single report's INSERT, the
    history's summaries) are then neither parsed nor planned again, nor their values quoted
    into the text. Elsewhere Django's own cursor.

    Django leaves prepared statements off (so that a connection pooler in transaction mode,
    pgbouncer before 1.21, keeps working); the settings turn them on unless
    DATABASE_PREPARED_STATEMENTS=false, and then this cursor binds and plans each time.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    # What Django's connection.cursor() does, with our cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparingCursor(connection.connection))


class _PreparingCursor(psycopg.Cursor):
    """A psycopg cursor that prepares what it runs, and tells Django's query log (DEBUG,
    tests) the statement with its values, composed only when the log asks."""

    _sent: tuple | None = None

    def execute(self, query, params=None, *, prepare=None, binary=None):
        self._sent = (query, params)
        return super().execute(query, _typed(params), prepare=True, binary=binary)

    @property
    def _query(self):  # read by Django's DatabaseOperations.last_executed_query
        if self._sent is None:
            return None
        text = psycopg.ClientCursor(self.connection).mogrify(*self._sent)
        return SimpleNamespace(query=text.encode())

    @_query.setter
    def _query(self, value) -> None:  # psycopg resets it; the property answers instead
        pass


def _typed(params):
    """Integers as bigint: sent apart, psycopg would type each by its size (0 as smallint),
    and arithmetic on a smallint or integer parameter could overflow where the same value
    written into the text (an integer or bigint literal) would not."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: Int8(v) if type(v) is int else v for k, v in params.items()}
    return [Int8(v) if type(v) is int else v for v in params]
