"""The local subscription record: what Stripe says, as we last applied it."""

from django.db import models

from core.plans import ASSIGNABLE_PLANS
from customers.models import Customer


class Subscription(models.Model):
    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"
        UNPAID = "unpaid"
        INCOMPLETE = "incomplete"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="subscription")
    plan = models.CharField(max_length=32, choices=[(p, p) for p in ASSIGNABLE_PLANS])
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIALING)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_price_id = models.CharField(max_length=255, blank=True)
    # Time (Stripe's clock) of the newest Stripe event applied: older events are ignored.
    stripe_event_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every change we make, so Stripe idempotency keys differ between two
    # deliberate changes (cancel, keep, cancel) but repeat on a retry of the same one.
    revision = models.PositiveIntegerField(default=0)
    # The payment of the current period, what a refund is made against.
    latest_invoice_id = models.CharField(max_length=255, blank=True)
    latest_amount_paid = models.PositiveIntegerField(default=0)
    latest_payment_reference = models.JSONField(default=dict, blank=True)
    latest_invoice_created = models.PositiveBigIntegerField(default=0)  # Stripe epoch seconds
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.customer.customer_id}: {self.plan} ({self.status})"


class StripeEvent(models.Model):
    """Durable inbox of verified Stripe webhook events, one row per Stripe event id.

    The unique event id makes a redelivered event a no-op; a failed handler leaves the
    row `failed` with its error so staff can replay it from the admin.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.stripe_event_id} {self.type} ({self.status})"


class Refund(models.Model):
    """A refund, written `pending` before Stripe is called so one never exists without its row."""

    class Reason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer"
        DUPLICATE = "duplicate"
        FRAUDULENT = "fraudulent"

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"
        REQUIRES_ACTION = "requires_action"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="refunds")
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    amount = models.PositiveIntegerField()
    reason = models.CharField(max_length=50, choices=Reason.choices)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Sent to Stripe with the create call: a retry returns the same refund.
    idempotency_key = models.CharField(max_length=100, unique=True)
    # Hash of what was asked (or the client's Idempotency-Key): identical requests find this row.
    request_fingerprint = models.CharField(max_length=64, db_index=True)
    payment_reference = models.JSONField(default=dict)
    failure_message = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.customer.customer_id} {self.amount} ({self.status})"
