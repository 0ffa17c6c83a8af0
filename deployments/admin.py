from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html

from core.errors import ApplicationError
from deployments import services
from deployments.models import Deployment


def _flower_url() -> str:
    return settings.FLOWER_URL.rstrip("/")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    """Records are written by the jobs only; staff watch them and retry failed ones."""

    list_display = (
        "namespace",
        "customer",
        "status",
        "progress_bar",
        "attempts",
        "short_error",
        "flower_task",
        "updated_at",
    )
    list_filter = ("status", "operation")
    search_fields = ("namespace", "customer__customer_id", "job_id", "celery_task_id")
    list_select_related = ("customer",)
    actions = ["retry_failed"]
    readonly_fields = (
        "job_id",
        "namespace",
        "customer",
        "status",
        "operation",
        "progress",
        "attempts",
        "last_error",
        "celery_task_id",
        "flower_task",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "flower_url": _flower_url()}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, obj):
        return format_html(
            '<progress value="{}" max="100" title="{}%"></progress> {}%',
            obj.progress,
            obj.progress,
            obj.progress,
        )

    @admin.display(description="last error")
    def short_error(self, obj):
        error = obj.last_error
        return error if len(error) <= 80 else error[:79] + "…"

    @admin.display(description="job in Flower")
    def flower_task(self, obj):
        if not obj.celery_task_id:
            return "-"
        return format_html(
            '<a href="{}/task/{}" target="_blank" rel="noopener">{}</a>',
            _flower_url(),
            obj.celery_task_id,
            obj.celery_task_id[:8],
        )

    @admin.action(description="Retry the selected failed deployments")
    def retry_failed(self, request, queryset):
        retried, skipped = [], []
        for deployment in queryset:
            try:
                services.deployment_retry(deployment=deployment)
            except ApplicationError:
                skipped.append(deployment.namespace)
            else:
                retried.append(deployment.namespace)
        if retried:
            self.message_user(request, f"Retrying: {', '.join(retried)}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Not failed, left alone: {', '.join(skipped)}.",
                messages.WARNING,
            )
