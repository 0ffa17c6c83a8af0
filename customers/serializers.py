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


# ---------------------------------------------------------------- response schemas
# What the endpoints answer, for the OpenAPI document (the dicts above are the answers; a test
# checks every real answer against these).
class CustomerOut(serializers.Serializer):
    customer_id = serializers.CharField()
    email = serializers.EmailField()
    company_name = serializers.CharField()
    full_name = serializers.CharField()
    stripe_customer_id = serializers.CharField(allow_null=True)
    is_active = serializers.BooleanField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    scheduled_deletion = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SubscriptionSummaryOut(serializers.Serializer):
    plan = serializers.CharField()
    status = serializers.CharField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()


class ApiKeyOut(serializers.Serializer):
    prefix = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class IssuedApiKeyOut(ApiKeyOut):
    api_key = serializers.CharField(help_text="The secret key; shown in this answer only.")


class ApiKeyListOut(serializers.Serializer):
    api_keys = ApiKeyOut(many=True)


class _LicenseJwtOut(serializers.Serializer):
    jwt = serializers.CharField()


class _SignupDeploymentOut(serializers.Serializer):
    job_id = serializers.UUIDField()
    namespace = serializers.CharField()
    status = serializers.CharField()


class SignupOut(serializers.Serializer):
    customer = CustomerOut()
    subscription = SubscriptionSummaryOut()
    license = _LicenseJwtOut()
    deployment = _SignupDeploymentOut()
    api_key = serializers.CharField(help_text="The customer's API key; shown once.")


class CustomerDetailOut(serializers.Serializer):
    customer = CustomerOut()
    subscription = SubscriptionSummaryOut(allow_null=True)


class _CustomerListItemOut(CustomerOut):
    subscription = SubscriptionSummaryOut(allow_null=True)


class PaginationOut(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()
    pages = serializers.IntegerField()


class CustomerListOut(serializers.Serializer):
    customers = _CustomerListItemOut(many=True)
    pagination = PaginationOut()
