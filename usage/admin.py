from django.contrib import admin
from django.utils.html import format_html, format_html_join

from customers.admin import ReadOnlyAdminMixin
from usage import selectors
from usage.models import CustomerUsage, UsageBillingRecord, UsageDaily, UsageReport


def _dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


class DeviceLimitFilter(admin.SimpleListFilter):
    title = "device limit"
    parameter_name = "device_limit"

    def lookups(self, request, model_admin):
        return [("over", "Over maxDevices now"), ("within", "Within maxDevices")]

    def queryset(self, request, queryset):
        if self.value() == "over":
            return queryset.filter(over_device_limit=True)
        if self.value() == "within":
            return queryset.filter(over_device_limit=False)
        return queryset


@admin.register(CustomerUsage)
class CustomerUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each customer's devices against the plan now, and consumption this billing period."""

    list_display = (
        "customer_id",
        "email",
        "entitled_plan",
        "current_devices_display",
        "max_devices_display",
        "over_limit",
    )
    list_filter = (DeviceLimitFilter, "subscription__plan", "subscription__status")
    search_fields = ("customer_id", "email", "company_name")
    fields = ("customer_id", "email", "company_name", "consumption")
    readonly_fields = fields

    def get_queryset(self, request):
        return selectors.customers_with_device_usage()

    @admin.display(description="plan")
    def entitled_plan(self, obj):
        subscription = getattr(obj, "subscription", None)
        if subscription is None:
            return "unlicensed"
        return f"{subscription.plan} ({subscription.status})"

    @admin.display(description="active devices now", ordering="current_devices")
    def current_devices_display(self, obj):
        return obj.current_devices

    @admin.display(description="maxDevices", ordering="max_devices")
    def max_devices_display(self, obj):
        return "unlimited" if obj.max_devices < 0 else obj.max_devices

    @admin.display(description="over limit", boolean=True, ordering="over_device_limit")
    def over_limit(self, obj):
        return obj.over_device_limit

    @admin.display(description="consumption this billing period")
    def consumption(self, obj):
        result = selectors.usage_consumption(customer=obj)
        period, usage = result.period, result.usage
        header = format_html(
            "<p>{} to {} ({}), plan {}{}. Peak active devices {} of {}; {} device-hours; "
            "peak storage {} MB.</p>",
            period.first_day,
            period.end_day,
            period.source,
            result.plan.name,
            "" if result.billable else " (not billable)",
            usage.peak_active_devices,
            "unlimited" if result.max_devices < 0 else result.max_devices,
            usage.device_hours,
            usage.peak_storage_mb,
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    meter,
                    line.as_dict()["used"],
                    line.unit,
                    "unlimited" if line.allowance is None else line.allowance,
                    line.as_dict()["overage"],
                    _dollars(line.amount_cents),
                )
                for meter, line in result.lines.items()
            ),
        )
        return format_html(
            "{}<table><tr><th>meter</th><th>used</th><th>allowance</th><th>overage</th>"
            "<th>amount</th></tr>{}<tr><th colspan='4'>total</th><th>{}</th></tr></table>",
            header,
            rows,
            _dollars(result.total_cents),
        )


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "reported_at",
        "customer",
        "instance_id",
        "active_devices",
        "total_devices",
        "mqtt_bytes_sent",
        "http_requests",
        "postgres_size_mb",
    )
    list_filter = ("reported_at",)
    search_fields = ("customer__customer_id", "customer__email", "instance_id", "report_id")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in UsageReport._meta.fields]
    date_hierarchy = "reported_at"


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "day",
        "customer",
        "report_count",
        "peak_active_devices",
        "device_seconds",
        "mqtt_bytes_sent",
        "http_requests",
        "peak_storage_kb",
    )
    search_fields = ("customer__customer_id", "customer__email")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in UsageDaily._meta.fields]
    date_hierarchy = "day"


@admin.register(UsageBillingRecord)
class UsageBillingRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "period_start",
        "customer",
        "meter",
        "quantity",
        "quantity_pushed",
        "amount_cents",
        "status",
        "pushed_at",
    )
    list_filter = ("status", "meter")
    search_fields = ("customer__customer_id", "identifier")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in UsageBillingRecord._meta.fields]
