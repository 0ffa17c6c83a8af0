"""The staff back-office: read-only pages over what the services own, and operations.

State changes only through operations: each is a confirmation page that shows what will
happen, checks its permission (the roles are groups: customers/migrations/0004_staff_roles),
then calls the same lifecycle or domain service as the API, audited as `staff:<username>`.
A refused operation shows the service's error in the message bar; the service changed
nothing. Other apps' admins declare their operations with `OperationsMixin` too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from core import plans
from core.audit import audit_record
from core.errors import ApplicationError
from customers import credentials
from customers.auth import actor_of
from customers.models import (
    AuditLog,
    CleanupRecord,
    Customer,
    CustomerApiKey,
    Deactivation,
    DeletedCustomer,
    StaffToken,
)
from deployments.models import Deployment
from licensing.models import LicenseHistory, LicenseRevocation
from licensing.services import AUTOMATIC_REVOKERS, license_restore, license_revoke
from lifecycle import offboarding, staff_operations
from subscriptions import mirror
from subscriptions.models import Payment, Refund, Subscription
from usage import metering
from usage import selectors as usage_selectors

# ---------------------------------------------------------------- roles and permissions
# Custom permissions (created with the roles by the data migration); a superuser has all.
PERM_REFUND = "customers.issue_refund"
PERM_CANCEL = "customers.cancel_subscription"
PERM_CHANGE_PLAN = "customers.change_plan"
PERM_DEACTIVATE = "customers.deactivate_customer"
PERM_REACTIVATE = "customers.reactivate_customer"
PERM_API_KEYS = "customers.manage_api_keys"
PERM_LICENSE = "customers.revoke_license"
PERM_DELETE = "customers.delete_customer_data"
PERM_RETRY_DEPLOYMENT = "deployments.retry_deployment"
PERM_REPLAY_EVENT = "subscriptions.replay_stripeevent"


def may(user, permission: str) -> bool:
    """Whether a staff user may run an operation that needs `permission`."""
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


def dollars(cents: int | None) -> str:
    return "-" if cents is None else f"${cents / 100:,.2f}"


def cents_of(amount: Decimal | None) -> int | None:
    return None if amount is None else int((amount * 100).to_integral_value())


class ReadOnlyAdminMixin:
    """Rows written only by services (audit trails, hashed credentials)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ---------------------------------------------------------------- operations
@dataclass(frozen=True)
class Preview:
    """What a confirmation page shows: the facts the operation works from, and its effects."""

    facts: list[tuple[str, Any]] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    message: str
    level: int = messages.SUCCESS
    # A secret shown once on the result page (never in a message: those are stored).
    secret: str = ""
    redirect: str = ""


class Operation:
    """One staff operation on one object: a form, a preview, and a call to a service."""

    slug = ""
    title = ""
    permission = ""
    button = "Confirm"
    danger = False
    form_class: type[forms.Form] = forms.Form

    def unavailable(self, obj) -> str | None:
        """Why the operation does not apply to `obj` now (None: it does)."""
        return None

    def form(self, obj, data=None) -> forms.Form:
        return self.form_class(data=data)

    def preview(self, obj) -> Preview:
        return Preview()

    def perform(self, request, obj, data: dict) -> Outcome:
        raise NotImplementedError


class OperationsMixin:
    """Adds `<object>/operation/<slug>/`: the confirmation page of each of `operations`."""

    operations: tuple[Operation, ...] = ()

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_operation"
        view = self.admin_site.admin_view(self.operation_view)
        own = [path("<path:object_id>/operation/<slug:slug>/", view, name=name)]
        return own + super().get_urls()

    def operation_url(self, obj, slug: str) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_operation"
        return reverse(name, args=[quote(obj.pk), slug], current_app=self.admin_site.name)

    def operation_links(self, request, obj) -> list[dict]:
        """The operations that apply to `obj` now and that the user may run."""
        return [
            {"title": op.title, "url": self.operation_url(obj, op.slug), "danger": op.danger}
            for op in self.operations
            if may(request.user, op.permission) and op.unavailable(obj) is None
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        links = self.operation_links(request, obj) if obj is not None else []
        extra_context = {"operations": links, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def object_url(self, obj) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        return reverse(name, args=[quote(obj.pk)], current_app=self.admin_site.name)

    def operation_view(self, request, object_id: str, slug: str):
        operation = next((op for op in self.operations if op.slug == slug), None)
        obj = self.get_object(request, unquote(object_id))
        if operation is None or obj is None:
            raise Http404("No such operation or object.")
        if not may(request.user, operation.permission):
            raise PermissionDenied
        back = self.object_url(obj)
        form = operation.form(obj, request.POST if request.method == "POST" else None)
        reason = operation.unavailable(obj)
        if reason:
            messages.warning(request, reason)
        elif request.method == "POST" and form.is_valid():
            try:
                outcome = operation.perform(request, obj, form.cleaned_data)
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                self.message_user(request, outcome.message, outcome.level)
                if outcome.secret:
                    return self._operation_page(
                        request, "admin/operation_done.html", obj, operation, secret=outcome.secret
                    )
                return HttpResponseRedirect(outcome.redirect or back)
        return self._operation_page(
            request,
            "admin/operation_confirm.html",
            obj,
            operation,
            form=form,
            preview=operation.preview(obj),
            unavailable=reason,
            back_url=back,
        )

    def _operation_page(self, request, template: str, obj, operation: Operation, **context):
        # admin_view's never_cache: no page of an operation (a new key) is kept by a cache.
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": obj,
                "operation": operation,
                "title": f"{operation.title}: {obj}",
                "back_url": self.object_url(obj),
                **context,
            },
        )


class TokenForm(forms.Form):
    """A form whose submission carries a token made when the page was shown: a double
    submit of the same page is the same request (the refund services deduplicate on it)."""

    request_token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["request_token"].initial = uuid.uuid4().hex


# ---------------------------------------------------------------- customer operations
class DeactivateForm(forms.Form):
    cancel_subscription = forms.BooleanField(required=False, initial=True)
    cancel_at_period_end = forms.BooleanField(
        required=False, help_text="Cancel at the end of the paid period instead of now."
    )
    issue_refund = forms.BooleanField(required=False)
    refund_reason = forms.ChoiceField(choices=Refund.Reason.choices)
    refund_amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        decimal_places=2,
        label="Refund amount (USD)",
        help_text="Empty: pro-rated.",
    )
    delete_data = forms.BooleanField(required=False, initial=True)
    retention_days = forms.IntegerField(min_value=0, max_value=3650, initial=30)


class Deactivate(Operation):
    slug, title, permission, danger = "deactivate", "Deactivate", PERM_DEACTIVATE, True
    button = "Deactivate"
    form_class = DeactivateForm

    def unavailable(self, obj):
        return None if obj.is_active else f"{obj.customer_id} is already deactivated."

    def preview(self, obj):
        subscription = getattr(obj, "subscription", None)
        return Preview(
            facts=[
                ("Customer", obj),
                ("Subscription", subscription or "-"),
                ("Paid through Stripe", bool(subscription and subscription.stripe_subscription_id)),
            ],
            effects=[
                "The subscription is canceled (now, or at the period end if asked).",
                "A refund is issued if asked (pro-rated unless an amount is given).",
                "The customer is deactivated and its license revoked.",
                "Its data is deleted after the retention window (reactivation is possible "
                "until then).",
                "The customer is emailed.",
            ],
        )

    def perform(self, request, obj, data):
        options = offboarding.DeactivationOptions(
            cancel_subscription=data["cancel_subscription"],
            issue_refund=data["issue_refund"],
            refund_reason=data["refund_reason"],
            refund_amount=cents_of(data["refund_amount"]),
            delete_data=data["delete_data"],
            retention_days=data["retention_days"],
            cancel_at_period_end=data["cancel_at_period_end"],
        )
        deactivation = offboarding.customer_deactivate(
            customer=obj, options=options, actor=actor_of(request.user)
        )
        result = offboarding.deactivation_result(deactivation)
        if result["refundIssued"]:
            refund = f"refund {dollars(result['refundAmount'])} issued"
        else:
            refund = f"no refund ({result.get('refundReason') or 'none asked for'})"
        return Outcome(
            f"{obj.customer_id} deactivated; deletion scheduled for "
            f"{result['scheduledDeletionDate'] or 'never'}; {refund}."
        )


class Reactivate(Operation):
    slug, title, permission, button = "reactivate", "Reactivate", PERM_REACTIVATE, "Reactivate"

    def unavailable(self, obj):
        if obj.is_active:
            return f"{obj.customer_id} is active; nothing to reactivate."
        if obj.scheduled_deletion and obj.scheduled_deletion <= timezone.now():
            return f"The retention window of {obj.customer_id} has ended; it cannot come back."
        return None

    def preview(self, obj):
        return Preview(
            facts=[("Deactivated at", obj.deleted_at), ("Deletion due", obj.scheduled_deletion)],
            effects=[
                "The customer is active again and its scheduled deletion is canceled.",
                "A license revoked by the deactivation is restored (one revoked by staff stays).",
                "The subscription is not restored: the customer subscribes again.",
            ],
        )

    def perform(self, request, obj, data):
        offboarding.customer_reactivate(customer_id=obj.customer_id, actor=actor_of(request.user))
        return Outcome(f"{obj.customer_id} reactivated.")


class DeleteForm(forms.Form):
    confirm_customer_id = forms.CharField(
        max_length=40, help_text="Type the customer id: the deletion cannot be undone."
    )

    def __init__(self, *args, customer_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer_id = customer_id

    def clean_confirm_customer_id(self):
        value = self.cleaned_data["confirm_customer_id"].strip()
        if value != self.customer_id:
            raise forms.ValidationError("That is not this customer's id.")
        return value


class DeleteNow(Operation):
    slug, title, permission, danger = "delete", "Delete now (retention ended)", PERM_DELETE, True
    button = "Delete permanently"

    def unavailable(self, obj):
        if staff_operations.due_cleanup(customer=obj) is None:
            return (
                f"{obj.customer_id} has no deletion due: only a deactivated customer whose "
                "retention window has ended is deleted."
            )
        return None

    def form(self, obj, data=None):
        return DeleteForm(data=data, customer_id=obj.customer_id)

    def preview(self, obj):
        record = staff_operations.due_cleanup(customer=obj)
        return Preview(
            facts=[
                ("Deletion was due", record.scheduled_for if record else "-"),
                ("Namespace", obj.namespace),
            ],
            effects=[
                "The instance's namespace is deleted.",
                "A live Stripe subscription is canceled.",
                "Every row of the customer is deleted; an anonymised record stays.",
                "This cannot be undone.",
            ],
        )

    def perform(self, request, obj, data):
        rows = staff_operations.customer_delete_due(customer=obj, actor=actor_of(request.user))
        return Outcome(
            f"{data['confirm_customer_id']} deleted ({sum(rows.values())} rows).",
            redirect=reverse("admin:customers_customer_changelist"),
        )


class KeyNameForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)


class IssueApiKey(Operation):
    slug, title, permission, button = "issue-key", "Issue an API key", PERM_API_KEYS, "Issue"
    form_class = KeyNameForm

    def preview(self, obj):
        return Preview(
            facts=[("Live keys", obj.api_keys.filter(revoked_at__isnull=True).count())],
            effects=["A new key is made and shown once; the existing keys keep working."],
        )

    def perform(self, request, obj, data):
        issued = credentials.api_key_issue(
            customer=obj, name=data["name"] or f"admin:{request.user.get_username()}"
        )
        audit_record(
            action="api_key.issued",
            customer=obj,
            actor=actor_of(request.user),
            prefix=issued.record.prefix,
        )
        return Outcome(f"New API key {issued.record.prefix}… issued.", secret=issued.raw_key)


class RotateApiKeys(IssueApiKey):
    slug, title, danger, button = "rotate-keys", "Rotate the API keys", True, "Rotate"

    def preview(self, obj):
        return Preview(
            facts=[("Live keys", obj.api_keys.filter(revoked_at__isnull=True).count())],
            effects=[
                "Every live key is revoked: the instance stops authenticating with them.",
                "One new key is made and shown once.",
            ],
        )

    def perform(self, request, obj, data):
        issued = credentials.api_key_rotate(customer=obj, name=data["name"])
        audit_record(
            action="api_key.rotated",
            customer=obj,
            actor=actor_of(request.user),
            prefix=issued.record.prefix,
        )
        return Outcome(f"Keys rotated; new key {issued.record.prefix}….", secret=issued.raw_key)


class RevokeKeyForm(forms.Form):
    key = forms.ModelChoiceField(queryset=CustomerApiKey.objects.none(), to_field_name="prefix")

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].queryset = customer.api_keys.filter(revoked_at__isnull=True)


class RevokeApiKey(Operation):
    slug, title, permission, danger = "revoke-key", "Revoke an API key", PERM_API_KEYS, True
    button = "Revoke"

    def unavailable(self, obj):
        live = obj.api_keys.filter(revoked_at__isnull=True).exists()
        return None if live else f"{obj.customer_id} has no live API key."

    def form(self, obj, data=None):
        return RevokeKeyForm(data=data, customer=obj)

    def preview(self, obj):
        return Preview(effects=["The chosen key stops working at once; the others keep working."])

    def perform(self, request, obj, data):
        api_key = credentials.api_key_revoke(api_key=data["key"])
        audit_record(
            action="api_key.revoked",
            customer=obj,
            actor=actor_of(request.user),
            prefix=api_key.prefix,
        )
        return Outcome(f"API key {api_key.prefix}… revoked.")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)


def _revocation(customer: Customer) -> LicenseRevocation | None:
    return LicenseRevocation.objects.filter(customer=customer).first()


class RevokeLicense(Operation):
    slug, title, permission, danger = "revoke-license", "Revoke the license", PERM_LICENSE, True
    button = "Revoke"
    form_class = ReasonForm

    def unavailable(self, obj):
        revocation = _revocation(obj)
        if revocation and revocation.revoked_by not in AUTOMATIC_REVOKERS:
            return (
                f"The license of {obj.customer_id} is already revoked by {revocation.revoked_by}."
            )
        return None

    def preview(self, obj):
        revocation = _revocation(obj)
        return Preview(
            facts=[("Revoked now", f"by {revocation.revoked_by}" if revocation else "no")],
            effects=[
                "License fetches are refused (403) and its unexpired licenses are listed as "
                "revoked: instances lose the license within the hour.",
                "A later payment or reactivation does not lift it; only a restore does.",
            ],
        )

    def perform(self, request, obj, data):
        license_revoke(customer=obj, reason=data["reason"], actor=actor_of(request.user))
        return Outcome(f"License of {obj.customer_id} revoked.")


class RestoreLicense(Operation):
    slug, title, permission, button = (
        "restore-license",
        "Restore the license",
        PERM_LICENSE,
        "Restore",
    )

    def unavailable(self, obj):
        return None if _revocation(obj) else f"The license of {obj.customer_id} is not revoked."

    def preview(self, obj):
        revocation = _revocation(obj)
        return Preview(
            facts=[
                ("Revoked by", revocation.revoked_by if revocation else "-"),
                ("Reason", revocation.reason if revocation else "-"),
                ("Customer active", obj.is_active),
            ],
            effects=["The revocation is lifted: the next fetch signs a fresh license."],
        )

    def perform(self, request, obj, data):
        license_restore(customer=obj, actor=actor_of(request.user))
        return Outcome(f"License of {obj.customer_id} restored.")


# ---------------------------------------------------------------- the customer's page
CHART_DAYS = 90


def usage_chart(customer: Customer, plan: plans.Plan) -> dict:
    """The last CHART_DAYS days for the page's chart (static/customers/usage_chart.js): daily
    peak active devices and traffic (MQTT + HTTP, GB), with the plan's limits."""
    history = usage_selectors.usage_history(customer=customer, days=CHART_DAYS)
    traffic = plan.included_traffic_gb
    return {
        "days": [day.isoformat() for day, _ in history.daily],
        "devices": [totals.peak_active_devices for _, totals in history.daily],
        "traffic_gb": [
            round(float((totals.mqtt_bytes + totals.http_bytes) / metering.BYTES_PER_GB), 3)
            for _, totals in history.daily
        ],
        "plan": plan.name,
        "max_devices": None if plan.features.maxDevices < 0 else plan.features.maxDevices,
        # The monthly allowance spread over 30 days, to compare one day with.
        "traffic_gb_per_day": None if traffic < 0 else round(traffic / 30, 3),
    }


def _links(site, request, model, obj) -> list[dict]:
    if obj is None or not site.is_registered(model):
        return []
    model_admin = site.get_model_admin(model)
    return (
        model_admin.operation_links(request, obj) if hasattr(model_admin, "operation_links") else []
    )


def customer_page(model_admin: CustomerAdmin, request, customer: Customer) -> dict:
    """Everything the customer's page shows: "what is going on with this customer"."""
    site = model_admin.admin_site
    subscription = Subscription.objects.filter(customer=customer).first()
    deployment = Deployment.objects.filter(customer=customer).first()
    entitled = (
        plans.entitled_plan(plan=subscription.plan, status=subscription.status)
        if subscription
        else plans.PLANS[plans.PLAN_UNLICENSED]
    )
    history = LicenseHistory.objects.filter(customer=customer)
    latest_license = history.filter(
        action__in=[
            LicenseHistory.Action.GENERATED,
            LicenseHistory.Action.UPGRADED,
            LicenseHistory.Action.DOWNGRADED,
        ]
    ).first()
    flower = settings.FLOWER_URL.rstrip("/")
    consumption = usage_selectors.usage_consumption(customer=customer)
    return {
        "customer": customer,
        "subscription": subscription,
        "subscribed_plan": plans.PLANS.get(subscription.plan) if subscription else None,
        "plan_price": dollars(plans.PLANS[subscription.plan].price_cents) if subscription else "-",
        "latest_paid": dollars(subscription.latest_amount_paid) if subscription else "-",
        "entitled_plan": entitled,
        "operations": [
            *model_admin.operation_links(request, customer),
            *_links(site, request, Subscription, subscription),
            *_links(site, request, Deployment, deployment),
        ],
        "revocation": _revocation(customer),
        "latest_license": latest_license,
        "license_history": history[:10],
        "chart": usage_chart(customer, entitled),
        "chart_days": [30, CHART_DAYS],
        "consumption": consumption,
        "overage_lines": [
            (meter, {**vars(line), "amount": dollars(line.amount_cents)})
            for meter, line in consumption.lines.items()
        ],
        "overage_total": dollars(consumption.total_cents),
        "refunds": [(r, dollars(r.amount)) for r in Refund.objects.filter(customer=customer)[:20]],
        "payments": [
            (p, dollars(p.amount)) for p in Payment.objects.filter(customer=customer)[:20]
        ],
        "deployment": deployment,
        "flower_task_url": f"{flower}/task/{deployment.celery_task_id}"
        if deployment and deployment.celery_task_id
        else "",
        "flower_url": flower,
        "api_keys": customer.api_keys.all(),
        "deactivations": customer.deactivations.all()[:5],
        "audit_trail": customer.audit_log.all()[:25],
        "stripe_mirror": stripe_mirror_section(customer),
    }


def stripe_mirror_section(customer: Customer) -> dict:
    """The customer's billing as Stripe has it, from the dj-stripe mirror (read only: the page
    never calls Stripe), with amounts in dollars; `unavailable` says why the mirror is empty
    when it cannot run."""
    billing = mirror.customer_billing_mirror(customer)
    return {
        "unavailable": mirror.mirror_is_configured(),
        "stripe_customer_id": billing.stripe_customer_id,
        "mirrored_at": billing.mirrored_at,
        "invoices": [
            (invoice, dollars(invoice.amount_due), dollars(invoice.amount_paid))
            for invoice in billing.invoices
        ],
        "payments": [(payment, dollars(payment.amount_paid)) for payment in billing.payments],
        "charges": [
            (charge, dollars(charge.amount), dollars(charge.amount_refunded))
            for charge in billing.charges
        ],
        "refunds": [(refund, dollars(refund.amount)) for refund in billing.refunds],
    }


# ---------------------------------------------------------------- customer pages
class ApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CustomerApiKey
    fields = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0


class LifecycleFilter(admin.SimpleListFilter):
    title = "lifecycle"
    parameter_name = "lifecycle"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("scheduled", "Scheduled for deletion")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(is_active=True)
        if self.value() == "scheduled":
            return queryset.filter(is_active=False, scheduled_deletion__isnull=False)
        return queryset


@admin.register(Customer)
class CustomerAdmin(OperationsMixin, admin.ModelAdmin):
    """View only: everything on the customer is changed by operations (and shown on its page:
    templates/admin/customers/customer/change_form.html)."""

    list_display = (
        "customer_id",
        "email",
        "company_name",
        "plan",
        "subscription_status",
        "is_active",
        "created_at",
    )
    list_filter = (LifecycleFilter, "is_active", "subscription__plan", "subscription__status")
    search_fields = ("customer_id", "email", "company_name", "full_name", "stripe_customer_id")
    # No `password`: the hash is never shown.
    fields = (
        "customer_id",
        "email",
        "company_name",
        "full_name",
        "stripe_customer_id",
        "stripe_sync_error",
        "is_active",
        "deleted_at",
        "scheduled_deletion",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [ApiKeyInline]
    list_select_related = ("subscription",)
    operations = (
        IssueApiKey(),
        RotateApiKeys(),
        RevokeApiKey(),
        RevokeLicense(),
        RestoreLicense(),
        Deactivate(),
        Reactivate(),
        DeleteNow(),
    )

    def has_add_permission(self, request):
        return False  # customers sign up (API) or are created with `manage.py customer add`

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deletion goes through offboarding: Deactivate, then Delete now

    @admin.display(description="plan", ordering="subscription__plan")
    def plan(self, obj):
        return getattr(getattr(obj, "subscription", None), "plan", "-")

    @admin.display(description="status", ordering="subscription__status")
    def subscription_status(self, obj):
        return getattr(getattr(obj, "subscription", None), "status", "-")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        customer = self.get_object(request, unquote(object_id))
        if customer is not None and self.has_view_permission(request, customer):
            extra_context = {**(extra_context or {}), **customer_page(self, request, customer)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(CustomerApiKey)
class CustomerApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Keys are issued, rotated and revoked from the customer's page."""

    list_display = ("prefix", "customer", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "customer__customer_id", "customer__email")
    fields = ("prefix", "customer", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields


@admin.register(StaffToken)
class StaffTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields


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
