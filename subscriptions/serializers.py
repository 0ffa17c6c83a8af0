"""Input validation and output shapes of the subscription endpoints (the guide's names)."""

from __future__ import annotations

from collections.abc import Sequence

from rest_framework import serializers

from config.api import StrictSerializer
from core.plans import PAID_PLANS
from core.timestamps import iso
from subscriptions.models import Refund, Subscription

REASONS = Refund.Reason.choices


class CustomerInput(StrictSerializer):
    customer_id = serializers.CharField(max_length=40)


class CheckoutInput(CustomerInput):
    plan = serializers.ChoiceField(choices=PAID_PLANS)
    success_url = serializers.URLField(max_length=2000, required=False)
    cancel_url = serializers.URLField(max_length=2000, required=False)


class UpgradeInput(CustomerInput):
    new_plan = serializers.ChoiceField(choices=PAID_PLANS)


class CancelImmediateInput(CustomerInput):
    issue_refund = serializers.BooleanField(default=False)
    refund_reason = serializers.ChoiceField(choices=REASONS, default="requested_by_customer")
    refund_amount = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class RefundInput(CustomerInput):
    reason = serializers.ChoiceField(choices=REASONS, default="requested_by_customer")
    amount = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    use_prorated = serializers.BooleanField(default=False)
    description = serializers.CharField(max_length=1000, allow_blank=True, default="")


def subscription_out(subscription: Subscription) -> dict:
    return {
        "customer_id": subscription.customer.customer_id,
        "plan": subscription.plan,
        "status": subscription.status,
        "trial_ends_at": iso(subscription.trial_ends_at),
        "current_period_start": iso(subscription.current_period_start),
        "current_period_end": iso(subscription.current_period_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": iso(subscription.canceled_at),
        "stripe_subscription_id": subscription.stripe_subscription_id or None,
    }


def refund_summary(refund: Refund) -> dict:
    """The guide's `refund` object for one Stripe refund."""
    return {
        "id": refund.pk,
        "refundId": refund.stripe_refund_id,
        "amount": refund.amount,
        "status": refund.status,
        "created": iso(refund.created_at),
    }


_STATUS_ORDER = ("failed", "requires_action", "pending", "canceled", "succeeded")


def refund_request_summary(refunds: Sequence[Refund]) -> dict:
    """The guide's `refund` object for one request, which may span several payments (one
    Stripe refund each, in `parts`): the total amount, the first refund's ids, and the status
    of the whole (succeeded only when every part did)."""
    first = refunds[0]
    statuses = {r.status for r in refunds}
    return {
        **refund_summary(first),
        "amount": sum(r.amount for r in refunds),
        "status": next(s for s in _STATUS_ORDER if s in statuses),
        "rule": first.rule,
        "parts": [refund_summary(r) for r in refunds],
    }


def refund_out(refund: Refund) -> dict:
    return {
        "id": refund.pk,
        "customer_id": refund.customer.customer_id,
        "stripe_refund_id": refund.stripe_refund_id,
        "amount": refund.amount,
        "reason": refund.reason,
        "description": refund.description,
        "status": refund.status,
        "rule": refund.rule,
        "payment_reference": refund.payment_reference or None,
        "created_at": iso(refund.created_at),
    }


# ---------------------------------------------------------------- response schemas
# What the endpoints answer, for the OpenAPI document (a test checks real answers against it).
class SubscriptionOut(serializers.Serializer):
    customer_id = serializers.CharField()
    plan = serializers.CharField()
    status = serializers.CharField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    canceled_at = serializers.DateTimeField(allow_null=True)
    stripe_subscription_id = serializers.CharField(allow_null=True)


class SubscriptionDetailOut(serializers.Serializer):
    subscription = SubscriptionOut()


class SubscriptionChangedOut(serializers.Serializer):
    message = serializers.CharField()
    subscription = SubscriptionOut()


class CheckoutOut(serializers.Serializer):
    session_id = serializers.CharField()
    checkout_url = serializers.URLField()


class RefundPartOut(serializers.Serializer):
    id = serializers.IntegerField()
    refundId = serializers.CharField(allow_blank=True)  # noqa: N815 - the guide's names
    amount = serializers.IntegerField(help_text="US cents.")
    status = serializers.CharField()
    created = serializers.DateTimeField()


class RefundSummaryOut(RefundPartOut):
    rule = serializers.CharField(help_text="amount, prorated or remaining: how it was decided.")
    parts = RefundPartOut(many=True, help_text="One Stripe refund per payment drawn on.")


class CanceledNowOut(SubscriptionChangedOut):
    refund = RefundSummaryOut(allow_null=True)
    refundIssued = serializers.BooleanField()  # noqa: N815
    refundReason = serializers.CharField(allow_null=True, allow_blank=True)  # noqa: N815


class RefundIssuedOut(serializers.Serializer):
    message = serializers.CharField()
    duplicate = serializers.BooleanField()
    rule = serializers.CharField()
    refund = RefundSummaryOut()


class RefundRowOut(serializers.Serializer):
    id = serializers.IntegerField()
    customer_id = serializers.CharField()
    stripe_refund_id = serializers.CharField(allow_blank=True)
    amount = serializers.IntegerField()
    reason = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    rule = serializers.CharField()
    payment_reference = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()


class RefundListOut(serializers.Serializer):
    refunds = RefundRowOut(many=True)


class WebhookReceivedOut(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField()
    id = serializers.CharField()
    status = serializers.CharField()
