"""Writes for deployment records, and the runs of their jobs.

The record is the outbox and the truth; the broker only carries wake-up calls:

    queued ──claim──▶ deploying ──▶ deployed
      ▲                   │ error with attempts left: back to queued, retried after a backoff
      └───────────────────┘ error with none left (QUEUE_MAX_RETRY): failed, with last_error
    any but deleting ──redeploy──▶ queued     failed ──admin retry──▶ queued / deleting
    any ──schedule_delete──▶ deleting ──▶ deleted (or failed when its attempts run out)

Every enqueue writes a new `celery_task_id`, and only the message with that id may act:
a run claims the record with a conditional UPDATE (who won is the row count), and every
later write of the run is conditioned on the same id and status. A superseded run (a
redeploy or a deletion came in meanwhile) or a duplicate message therefore changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from rest_framework import status as http

from config.api import ApplicationError
from config.celery import backoff_seconds
from customers.models import Customer
from deployments import kubernetes
from deployments.models import Deployment

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


def max_attempts() -> int:
    """Runs a job gets, first one included (the guide's QUEUE_MAX_RETRY, Bull's `attempts`)."""
    return max(1, settings.QUEUE_MAX_RETRY)


def queued_stale_after() -> timedelta:
    """How long a record may wait queued before its message counts as lost.

    Never shorter than twice the longest retry backoff, because a record waiting out its
    backoff is queued too.
    """
    configured = float(getattr(settings, "DEPLOYMENT_QUEUED_STALE_SECONDS", 300))
    return timedelta(seconds=max(configured, 2 * backoff_seconds(max_attempts())))


def running_stale_after() -> timedelta:
    """How long a run may go without a heartbeat before it counts as dead.

    Past the hard time limit no run is alive any more, so that is the default.
    """
    default = settings.CELERY_TASK_TIME_LIMIT + 60
    return timedelta(seconds=float(getattr(settings, "DEPLOYMENT_RUNNING_STALE_SECONDS", default)))


# ---------------------------------------------------------------- requests


def _enqueue(deployment: Deployment) -> None:
    """Publish the record's job once the transaction commits.

    A failed publish (Redis down, or the job itself failing when tasks run in-process) is
    logged, never raised into the caller: the record keeps its state and the sweep
    publishes it again, so a signup that committed never answers 500.
    """
    from deployments import tasks

    task = (
        tasks.deployment_deploy_task
        if deployment.operation == Operation.DEPLOY
        else tasks.deployment_delete_task
    )
    deployment_id, task_id, namespace = (
        deployment.pk,
        deployment.celery_task_id,
        deployment.namespace,
    )

    def publish() -> None:
        try:
            task.apply_async(args=[deployment_id], task_id=task_id)
        except Exception:
            logger.warning(
                "Job %s of %s was not published or did not complete in-process; the record "
                "keeps its state and the sweep retries lost jobs",
                task_id,
                namespace,
                exc_info=True,
            )

    transaction.on_commit(publish)


def _restart(deployment: Deployment, *, operation: str, status: str) -> None:
    """Give the record a new job (and a new task id, which retires any older message)."""
    deployment.operation = operation
    deployment.status = status
    deployment.progress = 0
    deployment.attempts = 0
    deployment.celery_task_id = str(uuid.uuid4())
    deployment.started_at = None
    deployment.finished_at = None
    deployment.save(
        update_fields=[
            "operation",
            "status",
            "progress",
            "attempts",
            "celery_task_id",
            "started_at",
            "finished_at",
            "updated_at",
        ]
    )
    _enqueue(deployment)


def deployment_queue(*, customer: Customer) -> Deployment:
    """Record that the customer's instance must be installed, and enqueue the job on commit.

    Called inside customer_signup's transaction: the record exists exactly when the
    customer does, and no worker can see the job before the rows are committed.
    """
    deployment, created = Deployment.objects.get_or_create(
        customer=customer,
        defaults={"namespace": customer.namespace, "celery_task_id": str(uuid.uuid4())},
    )
    if created:
        _enqueue(deployment)
    return deployment


@transaction.atomic
def deployment_redeploy(*, customer: Customer) -> Deployment:
    """Install the instance again with the customer's current license (plan change, re-issue).

    A run in progress is superseded: its remaining writes are ignored and the new job
    does the install-or-upgrade. Refused while the instance is being deleted.
    """
    deployment = Deployment.objects.select_for_update().filter(customer=customer).first()
    if deployment is None:
        return deployment_queue(customer=customer)
    if deployment.status == Status.DELETING:
        raise ApplicationError(
            f"The instance of {customer.customer_id} is being deleted; it cannot be redeployed.",
            error="Deployment being deleted",
            status_code=http.HTTP_409_CONFLICT,
            details={"namespace": deployment.namespace, "status": deployment.status},
        )
    _restart(deployment, operation=Operation.DEPLOY, status=Status.QUEUED)
    return deployment


@transaction.atomic
def deployment_retry(*, deployment: Deployment) -> Deployment:
    """Staff retry of a failed job (the admin action): the same operation, fresh attempts."""
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if locked.status != Status.FAILED:
        raise ApplicationError(
            f"Only failed deployments can be retried; {locked.namespace} is {locked.status}.",
            error="Deployment not failed",
            status_code=http.HTTP_409_CONFLICT,
            details={"namespace": locked.namespace, "status": locked.status},
        )
    deleting = locked.operation == Operation.DELETE
    _restart(
        locked,
        operation=locked.operation,
        status=Status.DELETING if deleting else Status.QUEUED,
    )
    return locked


@transaction.atomic
def deployment_schedule_delete(*, customer: Customer) -> Deployment | None:
    """Delete the customer's instance now (offboarding): enqueue deployment_delete_task.

    Idempotent: a record already deleting or deleted is returned as it is, and a customer
    without a record has nothing to delete.
    """
    deployment = Deployment.objects.select_for_update().filter(customer=customer).first()
    if deployment is None or deployment.status in (Status.DELETING, Status.DELETED):
        return deployment
    _restart(deployment, operation=Operation.DELETE, status=Status.DELETING)
    return deployment


def deployment_delete_now(*, namespace: str) -> None:
    """Delete an instance's namespace in the caller's process, then mark its record deleted.

    For the offboarding sweep, which purges the customer's rows right after: a queued
    delete job would find no record left to act on. A new task id retires any job still
    queued for the record. Raises kubernetes.DeploymentError when the deletion fails, so
    the caller keeps its own record and tries again on its next run.
    """
    kubernetes.get_backend(in_process=True).delete(
        namespace=namespace, progress=lambda percent, step: None
    )
    now = timezone.now()
    Deployment.objects.filter(namespace=namespace).update(
        operation=Operation.DELETE,
        status=Status.DELETED,
        progress=100,
        last_error="",
        celery_task_id=str(uuid.uuid4()),
        finished_at=now,
        updated_at=now,
    )


# ---------------------------------------------------------------- runs (called by tasks)


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
    """Progress goes to the record (also the heartbeat) and then to the Celery task state."""
    owned = _owned(deployment.pk, task_id, deployment.operation)

    def report(percent: int, step: str) -> None:
        percent = min(100, max(0, percent))
        rows = Deployment.objects.filter(owned, status=deployment.status).update(
            progress=percent, updated_at=timezone.now()
        )
        if not rows:
            raise JobNotOwned(f"Deployment {deployment.pk} was taken over during {step!r}.")
        if on_progress is not None:
            on_progress(percent, step)

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
    if not running.update(status=retry_status, last_error=message, progress=0, updated_at=now):
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
    from licensing.services import license_get_or_issue

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


# ---------------------------------------------------------------- sweep (the outbox relay)


@dataclass(frozen=True)
class SweepResult:
    republished: int
    restarted: int


def deployment_sweep(*, limit: int = 100) -> SweepResult:
    """Re-enqueue the jobs that the broker lost; run every minute by beat.

    1. Queued (or deleting) for longer than queued_stale_after(): the publish after commit
       was lost (the process died between commit and publish, or Redis was down). Publish
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
    waiting = Deployment.objects.filter(
        status__in=(Status.QUEUED, Status.DELETING), updated_at__lt=now - queued_stale_after()
    ).order_by("updated_at")[:limit]
    for deployment in waiting:
        bumped = Deployment.objects.filter(
            pk=deployment.pk,
            status=deployment.status,
            celery_task_id=deployment.celery_task_id,
            updated_at=deployment.updated_at,
        ).update(updated_at=now)
        if bumped:
            logger.warning(
                "Re-enqueuing %s, %s since %s",
                deployment.namespace,
                deployment.status,
                deployment.updated_at,
            )
            _enqueue(deployment)
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
            _enqueue(deployment)
            restarted += 1
    return SweepResult(republished=republished, restarted=restarted)
