from django.contrib import admin

from subscriptions.models import Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "customer",
        "plan",
        "status",
        "trial_ends_at",
        "current_period_end",
        "cancel_at_period_end",
        "stripe_subscription_id",
    )
    list_filter = ("plan", "status", "cancel_at_period_end")
    search_fields = ("customer__customer_id", "customer__email", "stripe_subscription_id")
    raw_id_fields = ("customer",)
    list_select_related = ("customer",)
