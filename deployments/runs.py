"""The runs of deployment jobs, called by deployments.tasks; they never enqueue.

A run claims its record with a conditional UPDATE (who won is the row count), and every
later write of the run is conditioned on the same task id and status, so a superseded run
or a duplicate message changes nothing (the states are drawn in deployments.services).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from core.errors import ApplicationError
from deployments import kubernetes
from deployments.models import Deployment
from licensing.services import license_get_or_issue

logger = logging.getLogger(__name__)

Status = Deployment.Status
Operation = Deployment.Operation


class JobNotOwned(Exception):
    """This message no longer owns the record: superseded, duplicated, or already done."""


class JobWillRetry(Exception):
    """The run failed with attempts left; the record is back in line for a retry."""

    def __init__(self, *, attempt: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.attempt = attempt
        self.cause = cause


class JobFailed(Exception):
    """The job failed for good; `last_error` on the record says why."""


def backoff_seconds(retries: int) -> float:
    """Exponential backoff from QUEUE_BACKOFF_DELAY (ms): delay, 2×delay, 4×delay, ..."""
    return settings.QUEUE_BACKOFF_DELAY_MS / 1000 * (2**retries)


def max_attempts() -> int:
    """Runs a job gets, first one included (the guide's QUEUE_MAX_RETRY, Bull's `attempts`)."""
    return max(1, settings.QUEUE_MAX_RETRY)


def queued_stale_after() -> timedelta:
    """How long a record may stay queued after it was due before its message counts as lost.

    Due: when it was enqueued, or for a retry when its backoff ends (`retry_at`), so a record
    waiting out its backoff is never taken for lost, and a lost retry is found a sweep (a
    minute) after this.
    """
    return timedelta(seconds=float(settings.DEPLOYMENT_QUEUED_STALE_SECONDS))


def running_stale_after() -> timedelta:
    """How long a run may go without a heartbeat before it counts as dead.

    Past the hard time limit no run is alive any more, so that is the default (settings).
    """
    return timedelta(seconds=float(settings.DEPLOYMENT_RUNNING_STALE_SECONDS))


def _owned(deployment_id: int, task_id: str, operation: str) -> Q:
    return Q(pk=deployment_id, celery_task_id=task_id, operation=operation)


def _claim(
    *, deployment_id: int, task_id: str, operation: str, active: str, redelivered: bool
) -> Deployment:
    """Start a run, counting it as an attempt; the row count says whether we own the job.

    A deploy is claimable while queued; while deploying only by a message the broker
    redelivered (its run died: reject_on_worker_lost), or once the heartbeat is stale, so
    a duplicate message never runs beside a live run. Deletions are harmless to repeat.
    """
    now = timezone.now()
    owned = _owned(deployment_id, task_id, operation)
    if operation == Operation.DEPLOY:
        takeover = Q(status=Status.DEPLOYING)
        if not redelivered:
            takeover &= Q(updated_at__lt=now - running_stale_after())
        claimable = Q(status=Status.QUEUED) | takeover
    else:
        claimable = Q(status=Status.DELETING)
    claimed = Deployment.objects.filter(owned & claimable, attempts__lt=max_attempts()).update(
        status=active,
        attempts=F("attempts") + 1,
        progress=0,
        started_at=now,
        finished_at=None,
        retry_at=None,
        updated_at=now,
    )
    if claimed:
        return Deployment.objects.select_related("customer").get(pk=deployment_id)
    # Claimable but out of attempts: earlier runs died without reporting (a job that kills
    # its worker is redelivered forever otherwise). The cap on the record ends the loop.
    message = (
        f"Gave up after {max_attempts()} attempts: the last one ended without reporting "
        "(its worker was lost or killed)."
    )
    gave_up = Deployment.objects.filter(owned & claimable).update(
        status=Status.FAILED, last_error=message, finished_at=now, updated_at=now
    )
    if gave_up:
        raise JobFailed(message)
    raise JobNotOwned(f"Task {task_id} does not own deployment {deployment_id}.")


def _progress_writer(
    deployment: Deployment, task_id: str, on_progress: kubernetes.Progress | None
) -> kubernetes.Progress:
    """Progress goes to the record (also the heartbeat) and then to the Celery task state.

    The record is the truth and its write must succeed; the Celery state and event (Flower)
    are a view of it, so their failure (a Redis blip) is logged and never fails the job.
    """
    owned = _owned(deployment.pk, task_id, deployment.operation)

    def report(percent: int, step: str) -> None:
        percent = min(100, max(0, percent))
        rows = Deployment.objects.filter(owned, status=deployment.status).update(
            progress=percent, updated_at=timezone.now()
        )
        if not rows:
            raise JobNotOwned(f"Deployment {deployment.pk} was taken over during {step!r}.")
        if on_progress is not None:
            try:
                on_progress(percent, step)
            except Exception:  # the broker or result backend is away; the record is written
                logger.warning(
                    "Progress of %s not published (%s%% %s)",
                    deployment.namespace,
                    percent,
                    step,
                    exc_info=True,
                )

    return report


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message[:4000]


def _record_failure(
    deployment: Deployment,
    task_id: str,
    exc: BaseException,
    *,
    retry_status: str,
    permanent: bool = False,
) -> NoReturn:
    """Write the error; fail for good when out of attempts, else raise JobWillRetry."""
    now = timezone.now()
    running = Deployment.objects.filter(
        _owned(deployment.pk, task_id, deployment.operation), status=deployment.status
    )
    message = _describe(exc)
    if permanent or deployment.attempts >= max_attempts():
        if not running.update(
            status=Status.FAILED, last_error=message, finished_at=now, updated_at=now
        ):
            raise JobNotOwned(f"Deployment {deployment.pk} was taken over.") from exc
        logger.warning("Deployment %s failed for good: %s", deployment.namespace, message)
        raise JobFailed(message) from exc
    retry_at = now + timedelta(seconds=backoff_seconds(deployment.attempts - 1))
    if not running.update(
        status=retry_status, last_error=message, progress=0, retry_at=retry_at, updated_at=now
    ):
        raise JobNotOwned(f"Deployment {deployment.pk} was taken over.") from exc
    logger.info(
        "Deployment %s attempt %s failed, will retry: %s",
        deployment.namespace,
        deployment.attempts,
        message,
    )
    raise JobWillRetry(attempt=deployment.attempts, cause=exc) from exc


def _finish(deployment: Deployment, task_id: str, *, done: str) -> Deployment:
    now = timezone.now()
    rows = Deployment.objects.filter(
        _owned(deployment.pk, task_id, deployment.operation), status=deployment.status
    ).update(status=done, progress=100, last_error="", finished_at=now, updated_at=now)
    if not rows:
        raise JobNotOwned(f"Deployment {deployment.pk} was taken over before it finished.")
    deployment.refresh_from_db()
    return deployment


def deployment_deploy_run(
    *,
    deployment_id: int,
    task_id: str,
    redelivered: bool = False,
    in_process: bool = False,
    on_progress: kubernetes.Progress | None = None,
) -> Deployment:
    """One run of the deploy job: install or upgrade the instance with a fresh license.

    Raises JobNotOwned (do nothing), JobWillRetry (retry after a backoff) or JobFailed.
    """
    deployment = _claim(
        deployment_id=deployment_id,
        task_id=task_id,
        operation=Operation.DEPLOY,
        active=Status.DEPLOYING,
        redelivered=redelivered,
    )
    try:
        issued = license_get_or_issue(customer=deployment.customer)
    except ApplicationError as exc:
        # A revoked license does not get better by retrying.
        _record_failure(deployment, task_id, exc, retry_status=Status.QUEUED, permanent=True)
    spec = kubernetes.InstanceSpec(
        customer_id=deployment.customer.customer_id,
        namespace=deployment.namespace,
        license_key=issued.token,
        base_domain=settings.BASE_DOMAIN,
    )
    report = _progress_writer(deployment, task_id, on_progress)
    try:
        kubernetes.get_backend(in_process=in_process).deploy(spec, progress=report)
    except JobNotOwned:
        raise
    except Exception as exc:  # any failure of the install, soft time limit included
        _record_failure(deployment, task_id, exc, retry_status=Status.QUEUED)
    return _finish(deployment, task_id, done=Status.DEPLOYED)


def deployment_delete_run(
    *,
    deployment_id: int,
    task_id: str,
    in_process: bool = False,
    on_progress: kubernetes.Progress | None = None,
) -> Deployment:
    """One run of the delete job: remove the namespace through the backend, mark deleted."""
    deployment = _claim(
        deployment_id=deployment_id,
        task_id=task_id,
        operation=Operation.DELETE,
        active=Status.DELETING,
        redelivered=False,
    )
    report = _progress_writer(deployment, task_id, on_progress)
    try:
        kubernetes.get_backend(in_process=in_process).delete(
            namespace=deployment.namespace, progress=report
        )
    except JobNotOwned:
        raise
    except Exception as exc:
        _record_failure(deployment, task_id, exc, retry_status=Status.DELETING)
    return _finish(deployment, task_id, done=Status.DELETED)
