"""Subscription endpoints (the guide's paths and bodies) and the Stripe webhook."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import api_doc
from core.audit import audit_record
from core.errors import ApplicationError, error_body
from customers.auth import IsStaff, IsStaffOrCustomerInstance, actor_of, customer_get_for
from lifecycle import plan_changes
from subscriptions import refunds, serializers, services, stripe_api, webhooks
from subscriptions.models import Refund

OBJ = OpenApiTypes.OBJECT
# What an operation that changes the subscription at Stripe can refuse, besides its auth
# rule's refusals: Stripe declined (402), the state does not allow it (409), Stripe or the
# queue unavailable (503).
STRIPE_ERRORS = (402, 409, 503)


def _audit(request, action: str, customer, **metadata) -> None:
    audit_record(action=action, customer=customer, actor=actor_of(request.user), **metadata)


def _input(serializer_class, request):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    customer = customer_get_for(user=request.user, customer_id=values.pop("customer_id"))
    return customer, values


class CheckoutView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Create a Stripe Checkout session for a paid plan",
        description="409 `Subscription exists` while the customer has a live Stripe "
        "subscription, 409 `Checkout already open` while a session for another plan can "
        "still be paid (the answer names it); an open session for the same plan is returned "
        "again.",
        request=serializers.CheckoutInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.CheckoutOut},
    )
    def post(self, request):
        customer, values = _input(serializers.CheckoutInput, request)
        success = (
            values.get("success_url")
            or request.build_absolute_uri("/checkout/success") + "?session_id={CHECKOUT_SESSION_ID}"
        )
        cancel = values.get("cancel_url") or request.build_absolute_uri("/checkout/cancel")
        session = services.checkout_session_start(
            customer=customer,
            plan=values["plan"],
            success_url=success,
            cancel_url=cancel,
            actor=actor_of(request.user),
        )
        return Response(session)


class SubscriptionDetailView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Get the customer's subscription",
        responses={200: serializers.SubscriptionDetailOut},
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        return Response({"subscription": serializers.subscription_out(customer.subscription)})


class UpgradeView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Change to another paid plan now, with Stripe proration",
        request=serializers.UpgradeInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.SubscriptionChangedOut},
    )
    def post(self, request):
        customer, values = _input(serializers.UpgradeInput, request)
        subscription = plan_changes.subscription_change_plan(
            customer=customer, new_plan=values["new_plan"], actor=actor_of(request.user)
        )
        return Response(
            {
                "message": f"Subscription changed to {subscription.plan}",
                "subscription": serializers.subscription_out(subscription),
            }
        )


class CancelView(APIView):
    """Legacy: cancel now without refund."""

    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Cancel immediately without refund (legacy)",
        request=serializers.CustomerInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.SubscriptionChangedOut},
    )
    def post(self, request):
        customer, _ = _input(serializers.CustomerInput, request)
        cancellation = plan_changes.subscription_cancel_immediately(
            customer=customer, actor=actor_of(request.user)
        )
        return Response(
            {
                "message": "Subscription canceled immediately",
                "subscription": serializers.subscription_out(cancellation.subscription),
            }
        )


class CancelAtPeriodEndView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]
    cancel = True
    message = "Subscription will cancel at period end"

    @api_doc(
        "staff_or_customer",
        "Cancel at the end of the paid period (graceful)",
        request=serializers.CustomerInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.SubscriptionChangedOut},
    )
    def post(self, request):
        customer, _ = _input(serializers.CustomerInput, request)
        subscription = plan_changes.subscription_cancel_at_period_end(
            customer=customer, cancel=self.cancel, actor=actor_of(request.user)
        )
        return Response(
            {"message": self.message, "subscription": serializers.subscription_out(subscription)}
        )


class KeepView(CancelAtPeriodEndView):
    cancel = False
    message = "Subscription will continue"

    @api_doc(
        "staff_or_customer",
        "Keep: undo a cancellation at period end",
        request=serializers.CustomerInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.SubscriptionChangedOut},
    )
    def post(self, request):
        return super().post(request)


class CancelImmediateView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Cancel immediately, optionally with a refund",
        description="A refund (`issue_refund: true`) needs staff credentials; without "
        "`refund_amount` the refund is pro-rated. A refund that cannot be made is refused "
        "(409) before anything is canceled; one Stripe does not complete leaves the "
        "cancellation done and says why (`refundIssued: false`, `refundReason`).",
        request=serializers.CancelImmediateInput,
        errors=STRIPE_ERRORS,
        responses={200: serializers.CanceledNowOut},
    )
    def post(self, request):
        customer, values = _input(serializers.CancelImmediateInput, request)
        if values["issue_refund"] and not IsStaff().has_permission(request, self):
            raise PermissionDenied("Refunds are issued by staff only.")
        refund = None
        if values["issue_refund"]:
            refund = plan_changes.RefundOnCancel(
                reason=values["refund_reason"],
                amount=values.get("refund_amount"),
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        cancellation = plan_changes.subscription_cancel_immediately(
            customer=customer, actor=actor_of(request.user), refund=refund
        )
        return Response(
            {
                "message": "Subscription canceled immediately",
                "subscription": serializers.subscription_out(cancellation.subscription),
                "refund": serializers.refund_request_summary(cancellation.refunds)
                if cancellation.refunds
                else None,
                "refundIssued": cancellation.refund_issued,
                "refundReason": cancellation.refund_reason,
            }
        )


class RefundView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Issue a refund without canceling",
        description="The amount follows one rule, named in `rule`: `amount` (cents, as "
        "asked, also when `use_prorated` is sent with it), `prorated` (`use_prorated` alone: "
        "each payment's unused share of the period), or `remaining` (neither: all that is "
        "left). It is taken from the current period's payments, newest first, never more "
        "than paid minus refunded; each payment gets its own Stripe refund (`refund.parts`). "
        "An `Idempotency-Key` header makes retries safe for 24 h; identical requests without "
        "one within 10 minutes return the first refund.",
        request=serializers.RefundInput,
        errors=(404, *STRIPE_ERRORS),
        responses={200: serializers.RefundIssuedOut},
    )
    def post(self, request):
        customer, values = _input(serializers.RefundInput, request)
        result = refunds.refund_request(
            customer=customer,
            reason=values["reason"],
            amount=values.get("amount"),
            use_prorated=values["use_prorated"],
            description=values["description"],
            client_key=request.headers.get("Idempotency-Key", ""),
            actor=actor_of(request.user),
        )
        summary = serializers.refund_request_summary(result.refunds)
        if not result.duplicate:
            _audit(
                request,
                "refund.issued",
                customer,
                refund=result.refund.pk,
                refunds=[r.pk for r in result.refunds],
                amount=result.amount,
                status=summary["status"],
                rule=result.rule,
            )
        return Response(
            {
                "message": "Refund already issued for this request"
                if result.duplicate
                else "Refund issued successfully",
                "duplicate": result.duplicate,
                "rule": result.rule,
                "refund": summary,
            }
        )


class RefundListView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc("staff_or_customer", "Refund history", responses={200: serializers.RefundListOut})
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        rows = Refund.objects.filter(customer=customer).select_related("customer")
        return Response({"refunds": [serializers.refund_out(r) for r in rows]})


class StripeWebhookView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []  # the raw body is what Stripe signed

    @api_doc(
        "stripe",
        "Stripe webhook",
        request=OBJ,
        responses={200: serializers.WebhookReceivedOut, 500: OBJ},
        description="Each event is stored once by its id and applied once; a redelivery "
        "answers 200 and changes nothing. A failed handler answers 500 so Stripe retries; "
        "staff can also replay it from the admin.",
    )
    def post(self, request):
        try:
            event = stripe_api.webhook_event_from_request(
                request.body, request.headers.get("Stripe-Signature")
            )
        except stripe_api.WebhookSignatureError as exc:
            raise ApplicationError(str(exc), error="Invalid signature") from exc
        except stripe_api.WebhookPayloadError as exc:
            raise ApplicationError(str(exc), error="Malformed event") from exc
        try:
            record, created = webhooks.stripe_event_receive(event=event)
        except Exception:
            return Response(
                error_body(
                    "Webhook handler failed",
                    f"Event {event['id']} was stored but could not be applied; Stripe will retry.",
                ),
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        return Response(
            {
                "received": True,
                "duplicate": not created,
                "id": record.stripe_event_id,
                "status": record.status,
            }
        )
