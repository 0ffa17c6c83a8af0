"""Requests for deployment jobs: write the record, then enqueue its job after commit.

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

from django.db import transaction
from django.utils import timezone
from rest_framework import status as http

from core.errors import ApplicationError
from customers.models import Customer
from deployments import kubernetes, tasks
from deployments.models import Deployment

logger = logging.getLogger(__name__)

Status = Deployment.Status
Operation = Deployment.Operation


# ---------------------------------------------------------------- requests


def _restart(deployment: Deployment, *, operation: str, status: str) -> None:
    """Give the record a new job (and a new task id, which retires any older message)."""
    deployment.operation = operation
    deployment.status = status
    deployment.progress = 0
    deployment.attempts = 0
    deployment.celery_task_id = str(uuid.uuid4())
    deployment.started_at = None
    deployment.finished_at = None
    deployment.retry_at = None
    deployment.save(
        update_fields=[
            "operation",
            "status",
            "progress",
            "attempts",
            "celery_task_id",
            "started_at",
            "finished_at",
            "retry_at",
            "updated_at",
        ]
    )
    tasks.deployment_job_publish(deployment)


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
        tasks.deployment_job_publish(deployment)
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
