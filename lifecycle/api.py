"""Offboarding endpoints (staff only): deactivate, reactivate, scheduled deletions, execute."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer, api_doc
from core.timestamps import iso
from customers.auth import IsStaff, actor_of, customer_get_for
from lifecycle import deletion, offboarding
from subscriptions.models import Refund


class _ReactivatedCustomerOut(serializers.Serializer):
    customer_id = serializers.CharField()
    is_active = serializers.BooleanField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    scheduled_deletion = serializers.DateTimeField(allow_null=True)


class ReactivatedOut(serializers.Serializer):
    message = serializers.CharField()
    customer = _ReactivatedCustomerOut()


class _ScheduledDeletionOut(serializers.Serializer):
    customer_id = serializers.CharField()
    email = serializers.EmailField()
    company_name = serializers.CharField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    scheduled_deletion = serializers.DateTimeField()


class ScheduledDeletionsOut(serializers.Serializer):
    deletions = _ScheduledDeletionOut(many=True)


class DeletionsExecutedOut(serializers.Serializer):
    message = serializers.CharField()
    deleted = serializers.IntegerField()


class _DeactivationResultOut(serializers.Serializer):
    """The guide's `result` object (lifecycle.offboarding.deactivation_result)."""

    customerId = serializers.CharField()  # noqa: N815 - the guide's field names
    subscriptionCanceled = serializers.BooleanField()  # noqa: N815
    refundIssued = serializers.BooleanField()  # noqa: N815
    refundAmount = serializers.IntegerField(min_value=0, help_text="US cents.")  # noqa: N815
    refundReason = serializers.CharField(  # noqa: N815
        allow_null=True, help_text="Why a requested refund was not issued; null otherwise."
    )
    dataScheduledForDeletion = serializers.BooleanField()  # noqa: N815
    scheduledDeletionDate = serializers.DateTimeField(allow_null=True)  # noqa: N815
    licenseRevoked = serializers.BooleanField()  # noqa: N815


class DeactivatedOut(serializers.Serializer):
    message = serializers.CharField()
    result = _DeactivationResultOut()


class DeactivateInput(StrictSerializer):
    customer_id = serializers.CharField(max_length=40)
    cancel_subscription = serializers.BooleanField(default=True)
    issue_refund = serializers.BooleanField(default=False)
    refund_reason = serializers.ChoiceField(Refund.Reason.choices, default="requested_by_customer")
    refund_amount = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    delete_data = serializers.BooleanField(default=True)
    retention_days = serializers.IntegerField(min_value=0, max_value=3650, default=30)
    cancel_at_period_end = serializers.BooleanField(default=False)


class CustomerIdInput(StrictSerializer):
    customer_id = serializers.CharField(max_length=40)


class NoInput(StrictSerializer):
    """No properties: the body may be left out or be `{}`; any property is refused (400)."""


class DeactivateView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Deactivate a customer: cancel, refund, soft delete, revoke, schedule deletion",
        description="Each step is recorded; running the same request again after a failure "
        "completes the missing steps and repeats none (no second refund or cancellation).",
        request=DeactivateInput,
        responses={200: DeactivatedOut},
        errors=(404, 402, 409, 503),
    )
    def post(self, request):
        data = DeactivateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer = customer_get_for(user=request.user, customer_id=values.pop("customer_id"))
        deactivation = offboarding.customer_deactivate(
            customer=customer,
            options=offboarding.DeactivationOptions(**values),
            actor=actor_of(request.user),
        )
        customer.refresh_from_db()
        return Response(
            {
                "message": "Customer deactivated successfully",
                "result": offboarding.deactivation_result(deactivation),
            }
        )


class ReactivateView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Reactivate a deactivated customer within the retention window",
        request=CustomerIdInput,
        responses={200: ReactivatedOut},
        errors=(404, 409, 410),
    )
    def post(self, request):
        data = CustomerIdInput(data=request.data)
        data.is_valid(raise_exception=True)
        customer = offboarding.customer_reactivate(
            customer_id=data.validated_data["customer_id"], actor=actor_of(request.user)
        )
        return Response(
            {
                "message": "Customer reactivated; subscribe again to restore a paid plan",
                "customer": {
                    "customer_id": customer.customer_id,
                    "is_active": customer.is_active,
                    "deleted_at": iso(customer.deleted_at),
                    "scheduled_deletion": iso(customer.scheduled_deletion),
                },
            }
        )


class ScheduledDeletionsView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Customers scheduled for permanent deletion",
        responses={200: ScheduledDeletionsOut},
    )
    def get(self, request):
        return Response({"deletions": deletion.scheduled_deletions()})


class ExecuteDeletionsView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Execute the deletions that are due now",
        request=NoInput,
        responses={200: DeletionsExecutedOut},
    )
    def post(self, request):
        NoInput(data=request.data).is_valid(raise_exception=True)
        deleted = deletion.cleanup_execute_due(actor=actor_of(request.user))
        return Response(
            {"message": f"Deleted {deleted} customers", "deleted": deleted},
            status=status.HTTP_200_OK,
        )
