from django.urls import path

from subscriptions import api

urlpatterns = [
    path("webhooks/stripe", api.StripeWebhookView.as_view(), name="stripe-webhook"),
    path("subscriptions/checkout", api.CheckoutView.as_view(), name="subscription-checkout"),
    path("subscriptions/upgrade", api.UpgradeView.as_view(), name="subscription-upgrade"),
    path("subscriptions/cancel", api.CancelView.as_view(), name="subscription-cancel"),
    path(
        "subscriptions/cancel-at-period-end",
        api.CancelAtPeriodEndView.as_view(),
        name="subscription-cancel-at-period-end",
    ),
    path("subscriptions/keep", api.KeepView.as_view(), name="subscription-keep"),
    path(
        "subscriptions/cancel-immediate",
        api.CancelImmediateView.as_view(),
        name="subscription-cancel-immediate",
    ),
    path("subscriptions/refund", api.RefundView.as_view(), name="subscription-refund"),
    path(
        "subscriptions/<str:customer_id>/refunds",
        api.RefundListView.as_view(),
        name="subscription-refunds",
    ),
    path(
        "subscriptions/<str:customer_id>",
        api.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
]
