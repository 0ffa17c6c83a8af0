"""The Celery result backend: django-celery-results' database backend, made to survive a
database restart.

Celery's worker main process writes results too (the failure of a rejected duplicate job,
in a pool callback, before it acknowledges the message). Its connection lives as long as the
process; after PostgreSQL restarts, the first write raised "the connection is closed", the
callback died before the acknowledgement, and each such message stayed unacknowledged until,
one per pool slot, the worker consumed nothing at all. Here every use of the database first
drops a connection Django knows to be broken or too old (and CONN_HEALTH_CHECKS makes the
next use check it), and a write that still meets a dead connection reconnects and tries once
more. A result that cannot be stored even then is logged and skipped: results are for Flower
and queue stats, the job records are the truth, and the message must be acknowledged.
"""

from __future__ import annotations

import functools
import logging

from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django_celery_results.backends.database import DatabaseBackend

logger = logging.getLogger(__name__)


def _outside_transactions(method, *, store: bool):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if connection.in_atomic_block:
            # Inside a transaction the connection is the caller's to manage.
            return method(self, *args, **kwargs)
        close_old_connections()
        try:
            return method(self, *args, **kwargs)
        except (InterfaceError, OperationalError) as first:
            logger.warning("Result backend lost its database connection (%s); reconnecting", first)
            connection.close()
            try:
                return method(self, *args, **kwargs)
            except (InterfaceError, OperationalError):
                if not store:
                    raise
                logger.exception("Result not stored (database unavailable); the job goes on")
                return None

    return call


class ReconnectingDatabaseBackend(DatabaseBackend):
    _store_result = _outside_transactions(DatabaseBackend._store_result, store=True)
    _save_group = _outside_transactions(DatabaseBackend._save_group, store=True)
    _forget = _outside_transactions(DatabaseBackend._forget, store=True)
    _delete_group = _outside_transactions(DatabaseBackend._delete_group, store=True)
    _get_task_meta_for = _outside_transactions(DatabaseBackend._get_task_meta_for, store=False)
    _restore_group = _outside_transactions(DatabaseBackend._restore_group, store=False)
