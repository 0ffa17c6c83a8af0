"""Input validation and output shapes of the subscription endpoints (the guide's names)."""

from __future__ import annotations

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

    def validate(self, attrs):
        if attrs.get("amount") is not None and attrs.get("use_prorated"):
            raise serializers.ValidationError(
                {"use_prorated": ["Give either amount or use_prorated, not both."]}
            )
        return attrs


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
    """The guide's `refund` object in cancel-immediate and refund responses."""
    return {
        "id": refund.pk,
        "refundId": refund.stripe_refund_id,
        "amount": refund.amount,
        "status": refund.status,
        "created": iso(refund.created_at),
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
        "created_at": iso(refund.created_at),
    }
