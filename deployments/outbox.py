"""The outbox relay: the record is the outbox, and this sweep publishes again what the broker
lost. deployments.tasks runs it every minute and passes it the publisher of its jobs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from deployments.models import Deployment
from deployments.runs import queued_stale_after, running_stale_after

logger = logging.getLogger(__name__)

Status = Deployment.Status


@dataclass(frozen=True)
class SweepResult:
    republished: int
    restarted: int


def deployment_sweep(*, publish: Callable[[Deployment], None], limit: int = 100) -> SweepResult:
    """Re-enqueue the jobs that the broker lost; run every minute by beat.

    1. Still queued (or deleting) queued_stale_after() after it was due (its enqueue, or the
       end of its retry's backoff, `retry_at`): the publish after commit or the retry's
       delayed message was lost (the process died in between, or Redis was down). Publish
       again with the same task id: if the first message turns up after all, whichever
       copy runs first claims the record and the other finds it taken.
    2. Deploying with no heartbeat for running_stale_after(): the run died with its whole
       worker. A killed pool child is redelivered at once (reject_on_worker_lost), but a
       lost worker's message comes back only after Redis' visibility timeout (an hour).
       Restart with a new task id, so that message is ignored if it ever returns; the
       attempt the dead run used still counts toward the cap.
    """
    now = timezone.now()
    republished = restarted = 0
    lost_since = now - queued_stale_after()
    waiting = (
        Deployment.objects.filter(status__in=(Status.QUEUED, Status.DELETING))
        .filter(Q(retry_at__isnull=True, updated_at__lt=lost_since) | Q(retry_at__lt=lost_since))
        .order_by("updated_at")[:limit]
    )
    for deployment in waiting:
        bumped = Deployment.objects.filter(
            pk=deployment.pk,
            status=deployment.status,
            celery_task_id=deployment.celery_task_id,
            updated_at=deployment.updated_at,
        ).update(updated_at=now, retry_at=None)
        if bumped:
            logger.warning(
                "Re-enqueuing %s, %s since %s",
                deployment.namespace,
                deployment.status,
                deployment.updated_at,
            )
            publish(deployment)
            republished += 1
    dead = Deployment.objects.filter(
        status=Status.DEPLOYING, updated_at__lt=now - running_stale_after()
    ).order_by("updated_at")[:limit]
    for deployment in dead:
        task_id = str(uuid.uuid4())
        moved = Deployment.objects.filter(
            pk=deployment.pk,
            status=Status.DEPLOYING,
            celery_task_id=deployment.celery_task_id,
            updated_at=deployment.updated_at,
        ).update(status=Status.QUEUED, celery_task_id=task_id, progress=0, updated_at=now)
        if moved:
            logger.warning("Restarting %s: its run stopped reporting", deployment.namespace)
            deployment.celery_task_id = task_id
            publish(deployment)
            restarted += 1
    return SweepResult(republished=republished, restarted=restarted)
