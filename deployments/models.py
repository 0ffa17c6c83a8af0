"""One deployment record per customer: the outbox and progress of its instance install."""

import uuid

from django.db import models

from customers.models import Customer


class Deployment(models.Model):
    """The state of one customer's instance, and the job that moves it.

    The record, not the broker, is the source of truth: `celery_task_id` names the one
    message allowed to act on it (a superseded or duplicated message finds another id and
    does nothing), `attempts` caps runs even when a run dies without reporting, and
    `updated_at` is the heartbeat that the periodic sweep reads to find lost jobs.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        DEPLOYING = "deploying"
        DEPLOYED = "deployed"
        FAILED = "failed"
        DELETING = "deleting"
        DELETED = "deleted"

    class Operation(models.TextChoices):
        DEPLOY = "deploy"
        DELETE = "delete"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="deployment")
    job_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    namespace = models.CharField(max_length=63, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # What the current (or last) job does: a `failed` record is retried as the same operation.
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.DEPLOY)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When a job queued for a retry is due (its backoff ends); the sweep counts a retry as
    # lost only once this has passed, not while the job waits out its backoff.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="deployment_progress_max_100"
            ),
        ]
        indexes = [
            # The sweep's query: records in one status whose heartbeat is old.
            models.Index(fields=["status", "updated_at"], name="deployment_status_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace} ({self.status})"

    @property
    def release(self) -> str:
        """Helm release name of the instance: `c` + the namespace's short id."""
        return "c" + self.namespace.removeprefix("customer-")
