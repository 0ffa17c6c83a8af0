from django.contrib import admin, messages

from customers.admin import ReadOnlyAdminMixin
from subscriptions.models import Refund, StripeEvent, Subscription
from subscriptions.webhooks import stripe_event_process


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
    readonly_fields = (
        "stripe_subscription_id",
        "stripe_price_id",
        "stripe_event_at",
        "revision",
        "latest_invoice_id",
        "latest_amount_paid",
        "latest_payment_reference",
        "latest_invoice_created",
    )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "customer", "amount", "reason", "status", "stripe_refund_id")
    list_filter = ("status", "reason")
    search_fields = ("customer__customer_id", "customer__email", "stripe_refund_id")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in Refund._meta.fields]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The durable webhook inbox; failed events can be replayed."""

    list_display = ("received_at", "stripe_event_id", "type", "status", "attempts")
    list_filter = ("status", "type")
    search_fields = ("stripe_event_id", "type")
    readonly_fields = [f.name for f in StripeEvent._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay selected failed or pending events")
    def replay(self, request, queryset):
        for event in queryset.filter(
            status__in=[StripeEvent.Status.FAILED, StripeEvent.Status.PENDING]
        ):
            try:
                event = stripe_event_process(event_id=event.pk)
            except Exception as exc:  # reported to staff, and kept as `failed` on the row
                self.message_user(request, f"{event.stripe_event_id}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{event.stripe_event_id}: {event.status}")
