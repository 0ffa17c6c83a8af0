from django.contrib import admin

from deployments.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("namespace", "customer", "status", "progress", "attempts", "updated_at")
    list_filter = ("status",)
    search_fields = ("namespace", "customer__customer_id", "job_id")
    readonly_fields = (
        "job_id",
        "namespace",
        "customer",
        "progress",
        "attempts",
        "last_error",
        "celery_task_id",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )
