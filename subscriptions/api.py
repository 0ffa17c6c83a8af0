"""Subscription endpoints and the Stripe webhook."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApplicationError, api_doc
from subscriptions import stripe_api, webhooks


class StripeWebhookView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    parser_classes: list = []  # the raw body is what Stripe signed

    @api_doc(
        "stripe",
        "Stripe webhook",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
        description="Each event is stored once by its id; a redelivery answers 200 and "
        "changes nothing.",
    )
    def post(self, request):
        try:
            event = stripe_api.webhook_event_from_request(
                request.body, request.headers.get("Stripe-Signature")
            )
        except stripe_api.WebhookSignatureError as exc:
            raise ApplicationError(str(exc), error="Invalid signature") from exc
        record, created = webhooks.stripe_event_record(event=event)
        return Response(
            {"received": True, "duplicate": not created, "id": record.stripe_event_id},
            status=status.HTTP_200_OK,
        )
