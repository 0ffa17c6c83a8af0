"""The Celery app: Redis broker, JSON only, late acks, results kept in the database.

Settings live in config/settings.py under the CELERY_ prefix. Without REDIS_URL,
tasks run eagerly in the calling process (development default).
"""

import os

from celery import Celery, signals
from django.db import close_old_connections, connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_stale_database_connections(sender=None, **_) -> None:
    """Before and after every task on a worker (as Django does around each request): drop a
    connection that errored or aged out, so a database restart costs a reconnect, not the
    worker. Not for a task run in-process: its connection belongs to the caller."""
    if getattr(getattr(sender, "request", None), "is_eager", False) or connection.in_atomic_block:
        return
    close_old_connections()
