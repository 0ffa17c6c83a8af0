from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html

from core.audit import audit_record
from core.errors import ApplicationError
from customers.admin import (
    PERM_RETRY_DEPLOYMENT,
    Operation,
    OperationsMixin,
    Outcome,
    Preview,
    ReadOnlyAdminMixin,
    may,
)
from customers.auth import actor_of
from deployments import services
from deployments.models import Deployment


def _flower_url() -> str:
    return settings.FLOWER_URL.rstrip("/")


class Retry(Operation):
    slug, title, permission, button = (
        "retry",
        "Retry the deployment",
        PERM_RETRY_DEPLOYMENT,
        "Retry",
    )

    def unavailable(self, obj):
        if obj.status == Deployment.Status.FAILED:
            return None
        return f"{obj.namespace} is {obj.status}: only a failed deployment is retried."

    def preview(self, obj):
        return Preview(
            facts=[
                ("Namespace", obj.namespace),
                ("Operation", obj.operation),
                ("Attempts", obj.attempts),
                ("Last error", obj.last_error or "-"),
            ],
            effects=[f"The {obj.operation} job runs again with fresh attempts."],
        )

    def perform(self, request, obj, data):
        deployment = _retry(request, obj)
        return Outcome(f"Retrying {deployment.namespace} ({deployment.operation}).")


def _retry(request, deployment: Deployment) -> Deployment:
    deployment = services.deployment_retry(deployment=deployment)
    audit_record(
        action="deployment.retried",
        customer=deployment.customer,
        actor=actor_of(request.user),
        namespace=deployment.namespace,
        operation=deployment.operation,
    )
    return deployment


@admin.register(Deployment)
class DeploymentAdmin(OperationsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    operations = (Retry(),)
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
        "retry_at",
    )

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

    def has_retry_permission(self, request):
        return may(request.user, PERM_RETRY_DEPLOYMENT)

    @admin.action(description="Retry the selected failed deployments", permissions=["retry"])
    def retry_failed(self, request, queryset):
        """The list's bulk retry: each failed one as the Retry operation does it."""
        retried, skipped = [], []
        for deployment in queryset:
            try:
                _retry(request, deployment)
            except ApplicationError:
                skipped.append(deployment.namespace)
            else:
                retried.append(deployment.namespace)
        if retried:
            self.message_user(request, f"Retrying: {', '.join(retried)}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Not failed, left alone: {', '.join(skipped)}.", messages.WARNING
            )
