"""Django's PostgreSQL backend, with a reused connection checked without a round trip.

`CONN_HEALTH_CHECKS` makes Django run `SELECT 1` before each request's first query, a whole
round trip on every request (a twentieth of a usage report's time). A connection the server
dropped (a restart, a failover, `pg_terminate_backend`) has told us so: the server sends its
FATAL message and closes the socket. So an idle connection whose socket has nothing to read
is usable; one with something to read (the goodbye, or an end of file), or in a broken state,
is replaced, as Django replaces one that fails `SELECT 1`. Outside the idle state (inside a
transaction) Django's own check runs.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed:
            return False
        pgconn = connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)
