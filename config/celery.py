"""The Celery app: Redis broker, JSON only, late acks, results kept in the database.

Settings live in config/settings.py under the CELERY_ prefix. Without REDIS_URL,
tasks run eagerly in the calling process (development default).
"""

import os
import time

from celery import Celery, signals
from django.core.cache import cache
from django.db import close_old_connections, connection
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Where the worker heartbeat's time is kept (read by config/health.py).
HEARTBEAT_CACHE_KEY = "celery:worker-heartbeat"

app = Celery("billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Tasks log with the request id of the request that enqueued them (django-structlog).
app.steps["worker"].add(DjangoStructLogInitStep)


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_stale_database_connections(sender=None, **_) -> None:
    """Before and after every task on a worker (as Django does around each request): drop a
    connection that errored or aged out, so a database restart costs a reconnect, not the
    worker. Not for a task run in-process: its connection belongs to the caller."""
    if getattr(getattr(sender, "request", None), "is_eager", False) or connection.in_atomic_block:
        return
    close_old_connections()


@app.task(name="config.worker_heartbeat_task", ignore_result=True, acks_late=False)
def worker_heartbeat_task() -> None:
    """Beat sends it every 30 s; the worker that runs it proves workers are consuming.
    /health/ready reports its age and `manage.py worker_health` fails when it is stale."""
    cache.set(HEARTBEAT_CACHE_KEY, time.time(), timeout=None)
