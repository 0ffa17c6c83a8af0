"""Celery tasks of the deployments app. Each takes ids, loads fresh state, calls a service.

Deploy and delete run with acks_late and reject_on_worker_lost (also the global defaults),
so a run whose worker dies is delivered again instead of lost; the attempt cap lives on
the record, because Celery's own retry count does not see a run that died. The hard and
soft time limits are the global QUEUE_TASK_TIME_LIMIT / QUEUE_TASK_SOFT_TIME_LIMIT.

Requests (deployments.services) publish jobs with `deployment_job_publish`; the tasks call
the runs (deployments.runs) and the outbox sweep (deployments.outbox), which never enqueue
by themselves.

`track_started` is off for them: a duplicate or superseded message is rejected without
touching the stored result of the run that owns the job; an owning run reports PROGRESS
from its first step, which Flower and the result backend both show.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import Reject
from django.db import transaction

from deployments import kubernetes, outbox, runs
from deployments.models import Deployment

logger = logging.getLogger(__name__)

_JOB_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "track_started": False,
    # Retries are counted on the record (attempts), not by Celery.
    "max_retries": None,
}


def _task_state_reporter(task) -> kubernetes.Progress | None:
    """Progress as Celery task state (result backend) and a `task-progress` event (Flower)."""
    if task.request.is_eager:
        return None

    def report(percent: int, step: str) -> None:
        task.update_state(state="PROGRESS", meta={"progress": percent, "step": step})
        # Flower shows an event's known fields only: `result` carries the progress there
        # until task-succeeded replaces it with the real result.
        task.send_event("task-progress", progress=percent, step=step, result=f"{percent}% {step}")

    return report


def _run(task, run, **kwargs):
    try:
        deployment = run(
            task_id=task.request.id,
            in_process=bool(task.request.is_eager),
            on_progress=_task_state_reporter(task),
            **kwargs,
        )
    except runs.JobNotOwned as exc:
        logger.info("Ignoring %s[%s]: %s", task.name, task.request.id, exc)
        raise Reject(str(exc), requeue=False) from exc
    except runs.JobWillRetry as exc:
        if task.request.is_eager:
            # In-process Celery propagates a Retry instead of running the task again; run the
            # next attempt here (a request waits for no backoff). The attempt cap ends it.
            return _run(task, run, **kwargs)
        raise task.retry(exc=exc.cause, countdown=runs.backoff_seconds(exc.attempt - 1)) from exc
    return {
        "deploymentId": deployment.pk,
        "namespace": deployment.namespace,
        "status": deployment.status,
        "attempts": deployment.attempts,
    }


@shared_task(name="deployments.deployment_deploy_task", **_JOB_OPTIONS)
def deployment_deploy_task(self, deployment_id: int) -> dict:
    """Install or upgrade a customer's instance (enqueued on commit at signup, on redeploy)."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    return _run(
        self,
        runs.deployment_deploy_run,
        deployment_id=deployment_id,
        redelivered=redelivered,
    )


@shared_task(name="deployments.deployment_delete_task", **_JOB_OPTIONS)
def deployment_delete_task(self, deployment_id: int) -> dict:
    """Delete a customer's instance and namespace (offboarding)."""
    return _run(self, runs.deployment_delete_run, deployment_id=deployment_id)


@shared_task(name="deployments.deployment_sweep_task", ignore_result=True)
def deployment_sweep_task() -> dict:
    """Re-enqueue lost jobs (beat, every minute): the record is the outbox."""
    result = outbox.deployment_sweep(publish=deployment_job_publish)
    return {"republished": result.republished, "restarted": result.restarted}


def deployment_job_publish(deployment: Deployment) -> None:
    """Publish the record's job once the transaction commits.

    A failed publish (Redis down, or the job itself failing when tasks run in-process) is
    logged, never raised into the caller: the record keeps its state and the sweep
    publishes it again, so a signup that committed never answers 500.
    """
    task = (
        deployment_deploy_task
        if deployment.operation == Deployment.Operation.DEPLOY
        else deployment_delete_task
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
