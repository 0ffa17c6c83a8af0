"""Customers and the credentials that act for them or for staff."""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_customer_id() -> str:
    """`cust_` + 16 random base-36 characters (~82 bits): unguessable, URL-safe."""
    return "cust_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


class Customer(models.Model):
    customer_id = models.CharField(
        max_length=40, unique=True, default=new_customer_id, editable=False
    )
    email = models.EmailField(max_length=254)
    company_name = models.CharField(max_length=200, blank=True)
    full_name = models.CharField(max_length=200, blank=True)
    # Django's password hash (never the password); empty when created by staff without one.
    password = models.CharField(max_length=128, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Why the Stripe customer could not be created yet (retried by a task); blank when fine.
    stripe_sync_error = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    scheduled_deletion = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="customer_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} <{self.email}>"

    @property
    def namespace(self) -> str:
        """Kubernetes namespace of this customer's instance: `customer-` + first 8 of the id."""
        return "customer-" + self.customer_id.removeprefix("cust_")[:8]


class HashedKey(models.Model):
    """A bearer secret stored as a lookup prefix plus SHA-256 of the whole secret.

    The secret itself is shown once at creation and never stored, so a database
    leak does not leak working credentials.
    """

    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class CustomerApiKey(HashedKey):
    """`X-API-Key` of a customer instance; bound to exactly one customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "customer API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.customer.customer_id})"


class StaffToken(HashedKey):
    """Per-staff `Authorization: Bearer` token for scripts; acts as that staff user."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AuditLog(models.Model):
    """One row per state-changing action, from the API, the admin, a webhook or a task."""

    action = models.CharField(max_length=100, db_index=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_log"
    )
    # Who acted: "staff:<user>", "api-key:<prefix>", "stripe:<event id>", "task:<name>", ...
    actor = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"


class Deactivation(models.Model):
    """One run of the deactivation workflow; each step is stamped when done, so running it
    again completes what is missing and repeats nothing."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="deactivations")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    options = models.JSONField(default=dict)
    subscription_done_at = models.DateTimeField(null=True, blank=True)
    subscription_canceled = models.BooleanField(default=False)
    refund = models.ForeignKey(
        "subscriptions.Refund", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    refund_done_at = models.DateTimeField(null=True, blank=True)
    soft_deleted_at = models.DateTimeField(null=True, blank=True)
    license_revoked_at = models.DateTimeField(null=True, blank=True)
    deletion_scheduled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.customer.customer_id} deactivation ({self.status})"


class CleanupRecord(models.Model):
    """A namespace and data deletion due after the retention window (the guide's cleanup_queue).

    The daily sweep executes due records; a Celery countdown weeks ahead is not used, since a
    Redis broker redelivers unacknowledged tasks after its visibility timeout.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        EXECUTED = "executed"
        CANCELED = "canceled"

    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="cleanups"
    )
    namespace = models.CharField(max_length=63)
    scheduled_for = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    executed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scheduled_for"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=models.Q(status="scheduled"),
                name="one_scheduled_cleanup_per_customer",
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace} {self.status} {self.scheduled_for:%Y-%m-%d}"


class DeletedCustomer(models.Model):
    """The anonymised record kept after a permanent deletion: no email, no name, no ids
    that lead back to a person; the customer id only as a salted hash, so a later
    reactivation attempt can be answered "Data has been deleted"."""

    customer_id_hash = models.CharField(max_length=64, unique=True)
    namespace = models.CharField(max_length=63)
    plan = models.CharField(max_length=32, blank=True)
    customer_since = models.DateField(null=True, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    rows_deleted = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"deleted {self.customer_id_hash[:12]}… {self.deleted_at:%Y-%m-%d}"
