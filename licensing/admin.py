from django.contrib import admin

from customers.admin import ReadOnlyAdminMixin
from licensing.models import LicenseHistory, LicenseRevocation


@admin.register(LicenseHistory)
class LicenseHistoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("generated_at", "customer", "action", "plan", "max_devices", "short_hash")
    list_filter = ("action", "plan")
    search_fields = ("customer__customer_id", "customer__email", "license_hash", "jti")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in LicenseHistory._meta.fields]

    @admin.display(description="SHA-256")
    def short_hash(self, obj):
        return f"{obj.license_hash[:12]}…" if obj.license_hash else "-"


@admin.register(LicenseRevocation)
class LicenseRevocationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "revoked_at", "revoked_by", "reason")
    search_fields = ("customer__customer_id", "customer__email")
    readonly_fields = ("customer", "reason", "revoked_by", "revoked_at")
