from django.urls import path

from subscriptions import api

urlpatterns = [
    path("webhooks/stripe", api.StripeWebhookView.as_view(), name="stripe-webhook"),
]
