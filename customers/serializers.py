"""Input validation and output shapes of the customer endpoints (the guide's field names)."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from config.api import StrictSerializer
from core.timestamps import iso
from customers.models import Customer, CustomerApiKey


class CustomerCreateInput(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    company_name = serializers.CharField(max_length=200, allow_blank=True, default="")
    full_name = serializers.CharField(max_length=200, allow_blank=True, default="")
    password = serializers.CharField(
        min_length=8, max_length=128, required=False, write_only=True, trim_whitespace=False
    )
    trial_days = serializers.IntegerField(min_value=0, max_value=365, required=False)

    def validate_password(self, value: str) -> str:
        try:
            validate_password(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages)) from exc
        return value


class SignupInput(CustomerCreateInput):
    """Public signup: a person's name, company and password are required; no trial override."""

    company_name = serializers.CharField(max_length=200)
    full_name = serializers.CharField(max_length=200)
    password = serializers.CharField(
        min_length=8, max_length=128, write_only=True, trim_whitespace=False
    )
    trial_days = None


class ApiKeyCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, allow_blank=True, default="")


def customer_out(customer: Customer) -> dict:
    return {
        "customer_id": customer.customer_id,
        "email": customer.email,
        "company_name": customer.company_name,
        "full_name": customer.full_name,
        "stripe_customer_id": customer.stripe_customer_id or None,
        "is_active": customer.is_active,
        "deleted_at": iso(customer.deleted_at),
        "scheduled_deletion": iso(customer.scheduled_deletion),
        "created_at": iso(customer.created_at),
        "updated_at": iso(customer.updated_at),
    }


def subscription_out(subscription) -> dict | None:
    if subscription is None:
        return None
    return {
        "plan": subscription.plan,
        "status": subscription.status,
        "trial_ends_at": iso(subscription.trial_ends_at),
        "current_period_end": iso(subscription.current_period_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
    }


def api_key_out(api_key: CustomerApiKey) -> dict:
    return {
        "prefix": api_key.prefix,
        "name": api_key.name,
        "created_at": iso(api_key.created_at),
        "last_used_at": iso(api_key.last_used_at),
        "revoked_at": iso(api_key.revoked_at),
    }
