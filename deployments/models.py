"""One deployment record per customer: the outbox and progress of its instance install."""

import uuid

from django.db import models

from customers.models import Customer


class Deployment(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        DEPLOYING = "deploying"
        DEPLOYED = "deployed"
        FAILED = "failed"
        DELETING = "deleting"
        DELETED = "deleted"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="deployment")
    job_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    namespace = models.CharField(max_length=63, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="deployment_progress_max_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace} ({self.status})"
