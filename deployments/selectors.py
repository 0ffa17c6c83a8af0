"""Reads of the deployment queue: the guide's `{waiting, active, completed, failed, delayed}`.

Each number comes from where Flower reads it, so the two always agree:
- waiting: messages in the broker queue the deployment tasks are routed to (Redis lists,
  priority sub-queues included), plus tasks a worker has taken but not started (reserved);
- active: tasks executing on a worker (`inspect().active()`);
- delayed: tasks a worker holds until their countdown ends, i.e. retries waiting out
  their backoff (`inspect().scheduled()`);
- completed / failed: stored results of the deployment tasks (SUCCESS / FAILURE).

With tasks executed in-process (no broker) there is no queue and no worker: the broker
and worker numbers are 0.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from celery import current_app as app
from celery import states
from django.conf import settings
from django.db.models import Count, Q
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError
from rest_framework import status as http

from core.errors import ApplicationError

DEPLOYMENT_TASKS = ("deployments.deployment_deploy_task", "deployments.deployment_delete_task")


def _queue_names() -> set[str]:
    """The queues Celery's router sends the deployment tasks to."""
    router = app.amqp.router
    return {router.route({}, name)["queue"].name for name in DEPLOYMENT_TASKS}


def _broker_waiting(names: set[str]) -> int:
    """Messages waiting in the queues, counted by the broker (passive declare, as Flower)."""
    waiting = 0
    with app.connection_for_read() as connection:
        try:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
        except (OperationalError, *connection.connection_errors) as exc:
            raise ApplicationError(
                "The queue broker cannot be reached; the queue cannot be counted.",
                error="Queue unavailable",
                status_code=http.HTTP_503_SERVICE_UNAVAILABLE,
            ) from exc
        channel = connection.default_channel
        for name in sorted(names):
            # Redis keeps no key for an empty queue: the passive declare then says "not found".
            with suppress(*connection.channel_errors):
                waiting += channel.queue_declare(queue=name, passive=True).message_count
    return waiting


def _worker_tasks(timeout: float) -> dict[str, int]:
    """Tasks held by the workers, by kind; the three broadcasts wait for replies together."""
    inspect = app.control.inspect(timeout=timeout)
    kinds = ("active", "reserved", "scheduled")
    with ThreadPoolExecutor(max_workers=len(kinds)) as pool:
        replies = dict(
            zip(kinds, pool.map(lambda kind: getattr(inspect, kind)(), kinds), strict=True)
        )
    return {
        kind: sum(len(tasks) for tasks in (reply or {}).values()) for kind, reply in replies.items()
    }


def queue_stats() -> dict[str, int]:
    counts = TaskResult.objects.filter(task_name__in=DEPLOYMENT_TASKS).aggregate(
        completed=Count("pk", filter=Q(status=states.SUCCESS)),
        failed=Count("pk", filter=Q(status=states.FAILURE)),
    )
    waiting = active = delayed = 0
    if not app.conf.task_always_eager and not app.conf.broker_url.startswith("memory://"):
        waiting = _broker_waiting(_queue_names())
        held = _worker_tasks(settings.QUEUE_STATS_INSPECT_TIMEOUT)
        waiting += held["reserved"]
        active, delayed = held["active"], held["scheduled"]
    return {
        "waiting": waiting,
        "active": active,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "delayed": delayed,
    }
