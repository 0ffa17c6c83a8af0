from django.contrib import admin, messages

from customers import credentials
from customers.models import (
    AuditLog,
    CleanupRecord,
    Customer,
    CustomerApiKey,
    Deactivation,
    DeletedCustomer,
    StaffToken,
)


class ReadOnlyAdminMixin:
    """Rows written only by services (audit trails, hashed credentials)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CustomerApiKey
    fields = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = (
        "customer_id",
        "email",
        "company_name",
        "plan",
        "subscription_status",
        "is_active",
        "created_at",
    )
    list_filter = ("is_active", "subscription__plan", "subscription__status")
    search_fields = ("customer_id", "email", "company_name", "full_name", "stripe_customer_id")
    readonly_fields = ("customer_id", "password", "created_at", "updated_at", "deleted_at")
    exclude = ("password",)
    inlines = [ApiKeyInline]
    actions = ["issue_api_key"]
    list_select_related = ("subscription",)

    @admin.display(description="plan", ordering="subscription__plan")
    def plan(self, obj):
        return getattr(getattr(obj, "subscription", None), "plan", "-")

    @admin.display(description="status", ordering="subscription__status")
    def subscription_status(self, obj):
        return getattr(getattr(obj, "subscription", None), "status", "-")

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request, queryset):
        for customer in queryset:
            issued = credentials.api_key_issue(customer=customer, name=f"admin:{request.user}")
            self.message_user(
                request,
                f"{customer.customer_id}: new API key {issued.raw_key} "
                "(copy it now; it is not stored)",
                messages.WARNING,
            )


@admin.register(CustomerApiKey)
class CustomerApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "customer", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "customer__customer_id", "customer__email")
    fields = ("prefix", "customer", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset.filter(revoked_at__isnull=True):
            credentials.api_key_revoke(api_key=api_key)
        self.message_user(request, "Revoked.")


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "action", "customer", "actor")
    list_filter = ("action",)
    search_fields = ("customer__customer_id", "customer__email", "actor", "action")
    list_select_related = ("customer",)
    readonly_fields = ("created_at", "action", "customer", "actor", "metadata")

    def get_queryset(self, request):
        # ?customer__customer_id=cust_... filters by customer (linked from the customer page).
        queryset = super().get_queryset(request)
        customer_id = request.GET.get("customer__customer_id")
        return queryset.filter(customer__customer_id=customer_id) if customer_id else queryset

    def lookup_allowed(self, lookup, value, request=None):
        return lookup == "customer__customer_id" or super().lookup_allowed(lookup, value, request)


@admin.register(Deactivation)
class DeactivationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "customer",
        "status",
        "subscription_canceled",
        "refund",
        "completed_at",
    )
    list_filter = ("status",)
    search_fields = ("customer__customer_id", "customer__email")
    readonly_fields = [f.name for f in Deactivation._meta.fields]


@admin.register(CleanupRecord)
class CleanupRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "namespace",
        "customer",
        "scheduled_for",
        "status",
        "executed_at",
        "canceled_at",
    )
    list_filter = ("status",)
    search_fields = ("namespace", "customer__customer_id")
    readonly_fields = [f.name for f in CleanupRecord._meta.fields]


@admin.register(DeletedCustomer)
class DeletedCustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("deleted_at", "namespace", "plan", "customer_since", "deactivated_at")
    readonly_fields = [f.name for f in DeletedCustomer._meta.fields]
