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
    # The newest paid invoice, for staff (refunds are made against `Payment` rows).
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


class Payment(models.Model):
    """One successful payment of one of the customer's invoices: an InvoicePayment at Stripe.

    What refunds are made against: a refund takes what is left of the current period's
    payments, newest first. Recorded from `invoice.paid` (which carries no payments: they are
    listed from Stripe) and reconciled before each refund. Times are on Stripe's clock.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="payments")
    # "legacy:<invoice id>" for payments recorded before invoice payments were read.
    stripe_invoice_payment_id = models.CharField(max_length=255, unique=True)
    stripe_invoice_id = models.CharField(max_length=255, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    # What Stripe refunds: {"payment_intent": "pi_..."} or {"charge": "ch_..."}.
    reference = models.JSONField(default=dict)
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    invoice_created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-invoice_created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.customer.customer_id} {self.amount} ({self.stripe_invoice_id})"


class Refund(models.Model):
    """A refund, written `pending` before Stripe is called so one never exists without its row.

    One Stripe refund per row, against one payment. A request that spans several payments
    makes one row per payment, all with the same `request_key`.
    """

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

    class Rule(models.TextChoices):
        """How the amount was decided (README, Refunds)."""

        AMOUNT = "amount"  # the amount asked for
        PRORATED = "prorated"  # each payment's unused share of the period
        REMAINING = "remaining"  # all that is left of the period's payments
        DUPLICATE_SUBSCRIPTION = "duplicate_subscription"  # a second subscription, in full
        EXTERNAL = "external"  # made outside this service (seen in a webhook)

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="refunds")
    payment = models.ForeignKey(
        Payment, on_delete=models.SET_NULL, null=True, blank=True, related_name="refunds"
    )
    # Shared by the rows of one request (one per payment it spans).
    request_key = models.CharField(max_length=64, blank=True, db_index=True)
    rule = models.CharField(max_length=30, choices=Rule.choices, default=Rule.AMOUNT)
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
