"""State is changed only through operations: no ModelAdmin lets staff edit, add or delete
what the services own. Every registered ModelAdmin is walked; a new model, field or admin
must be classified here before the test passes."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.test import RequestFactory

from customers.models import Customer
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db

# The fields that services (or Stripe, through them) own, per model: never editable.
SERVICE_OWNED: dict[str, set[str]] = {
    "customers.Customer": {
        "id",
        "customer_id",
        "password",
        "stripe_customer_id",
        "stripe_sync_error",
        "is_active",
        "deleted_at",
        "scheduled_deletion",
        "created_at",
        "updated_at",
        # Contact details: Stripe holds a copy and no service updates both yet.
        "email",
        "company_name",
        "full_name",
    },
    "customers.CustomerApiKey": {
        "id",
        "customer",
        "prefix",
        "key_hash",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    },
    "customers.StaffToken": {
        "id",
        "user",
        "prefix",
        "key_hash",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    },
    "subscriptions.Subscription": {
        "id",
        "customer",
        "plan",
        "status",
        "trial_ends_at",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "canceled_at",
        "stripe_subscription_id",
        "stripe_price_id",
        "stripe_event_at",
        "revision",
        "latest_invoice_id",
        "latest_amount_paid",
        "latest_payment_reference",
        "latest_invoice_created",
        "created_at",
        "updated_at",
    },
    "licensing.LicenseRevocation": {"id", "customer", "reason", "revoked_by", "revoked_at"},
    "deployments.Deployment": {
        "id",
        "customer",
        "job_id",
        "namespace",
        "status",
        "operation",
        "progress",
        "attempts",
        "last_error",
        "celery_task_id",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "retry_at",
    },
}
SERVICE_OWNED["usage.CustomerUsage"] = SERVICE_OWNED["customers.Customer"]
# Records that services append and nobody edits: every field ("*"), whatever fields they have.
for _label in (
    "customers.AuditLog",
    "customers.Deactivation",
    "customers.CleanupRecord",
    "customers.DeletedCustomer",
    "subscriptions.Payment",
    "subscriptions.Refund",
    "subscriptions.StripeEvent",
    "licensing.LicenseHistory",
    "usage.UsageReport",
    "usage.UsageDaily",
    "usage.UsageBillingRecord",
):
    SERVICE_OWNED[_label] = {"*"}

# Models whose admin is not the service's state: staff accounts and roles, Celery's
# schedules and results, django-axes' login records. Editing these is allowed.
NOT_SERVICE_STATE = {
    "auth.Group",
    "auth.User",
    "django_celery_beat.PeriodicTask",
    "django_celery_beat.ClockedSchedule",
    "django_celery_beat.CrontabSchedule",
    "django_celery_beat.SolarSchedule",
    "django_celery_beat.IntervalSchedule",
    "django_celery_results.TaskResult",
    "django_celery_results.GroupResult",
    "axes.AccessAttempt",
    "axes.AccessLog",
    "axes.AccessFailureLog",
}


def _superuser_request(django_user_model):
    request = RequestFactory().get("/admin/")
    request.user = django_user_model.objects.create_superuser("walker", "w@example.com", "x" * 12)
    return request


def _owned(model) -> set[str]:
    owned = SERVICE_OWNED[model._meta.label]
    return {f.name for f in model._meta.get_fields() if f.concrete} if owned == {"*"} else owned


def test_every_registered_model_admin_is_classified():
    registered = {model._meta.label for model in admin.site._registry}
    unclassified = registered - set(SERVICE_OWNED) - NOT_SERVICE_STATE
    assert not unclassified, f"classify these admins in {__file__}: {sorted(unclassified)}"


def test_every_field_of_a_service_model_is_listed():
    """A field added to a model must be declared service-owned (or the test changed)."""
    for model in admin.site._registry:
        if model._meta.label in SERVICE_OWNED:
            concrete = {f.name for f in model._meta.get_fields() if f.concrete}
            assert concrete <= _owned(model), (model._meta.label, concrete - _owned(model))


def test_no_model_admin_exposes_a_service_owned_field(django_user_model):
    request = _superuser_request(django_user_model)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if label not in SERVICE_OWNED:
            continue
        owned = _owned(model)
        # No add, change or delete, so no form saves anything: state moves by operations.
        assert not model_admin.has_add_permission(request), f"{label} allows add"
        assert not model_admin.has_change_permission(request, None), f"{label} allows change"
        assert not model_admin.has_delete_permission(request, None), f"{label} allows delete"
        assert "delete_selected" not in model_admin.get_actions(request), label
        assert not model_admin.list_editable, f"{label} has list_editable"
        # And were a permission opened, its form would still carry no owned field.
        shown = set(flatten_fieldsets(model_admin.get_fieldsets(request, None)))
        editable = shown - set(model_admin.get_readonly_fields(request, None))
        assert not editable & owned, f"{label} exposes {sorted(editable & owned)}"
        for inline in model_admin.get_inline_instances(request, None):
            inline_owned = _owned(inline.model)
            shown = set(flatten_fieldsets(inline.get_fieldsets(request, None)))
            fields = shown - set(inline.get_readonly_fields(request, None))
            assert not fields & inline_owned, (label, inline.model._meta.label, fields)
            assert not inline.has_add_permission(request, None), (label, inline)
            assert not inline.has_change_permission(request, None), (label, inline)
            assert not inline.has_delete_permission(request, None), (label, inline)
        checked += 1
    assert checked == len(SERVICE_OWNED)


def test_the_customer_page_never_shows_the_password_hash(admin_as, signup):
    # given a customer who signed up with a password
    signed_up = signup()
    customer = Customer.objects.get(customer_id=signed_up.id)
    assert customer.password.startswith("pbkdf2_")

    # when a superuser opens its page
    page = admin_as("superuser").get(f"/admin/customers/customer/{customer.pk}/change/")

    # then neither the hash nor a password field is on it
    assert page.status_code == 200
    content = page.content.decode()
    assert customer.password not in content
    assert customer.password.split("$")[2] not in content  # the salt
    assert 'name="password"' not in content


def test_editing_a_subscription_through_the_admin_is_refused(admin_as, signup):
    """The issue's case: a trial edited to enterprise/active served an enterprise license."""
    signed_up = signup()
    subscription = Subscription.objects.get(customer__customer_id=signed_up.id)
    client = admin_as("superuser")

    response = client.post(
        f"/admin/subscriptions/subscription/{subscription.pk}/change/",
        {"plan": "enterprise", "status": "active", "customer": subscription.customer_id},
    )

    assert response.status_code == 403
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.status) == ("starter", "trialing")
    decoded = signed_up.client.get(f"/api/licenses/{signed_up.id}").json()["decoded"]
    assert decoded["plan"] == "trial"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/admin/customers/customer/{pk}/change/"),
        ("post", "/admin/customers/customer/{pk}/delete/"),
        ("get", "/admin/customers/customer/{pk}/delete/"),
        ("post", "/admin/customers/customer/add/"),
    ],
)
def test_customer_cannot_be_edited_added_or_deleted_directly(admin_as, signup, method, path):
    signed_up = signup()
    customer = Customer.objects.get(customer_id=signed_up.id)
    client = admin_as("superuser")

    response = getattr(client, method)(
        path.format(pk=customer.pk),
        {"email": "new@example.com", "is_active": "", "post": "yes"},
    )

    assert response.status_code == 403
    customer.refresh_from_db()
    assert (customer.email, customer.is_active) == (signed_up.email, True)


def test_bulk_delete_of_customers_is_not_offered(admin_as, signup):
    signed_up = signup()
    customer = Customer.objects.get(customer_id=signed_up.id)
    client = admin_as("superuser")

    page = client.get("/admin/customers/customer/").content.decode()
    response = client.post(
        "/admin/customers/customer/",
        {"action": "delete_selected", "_selected_action": [customer.pk], "post": "yes"},
    )

    assert "delete_selected" not in page
    assert response.status_code in (200, 302)
    assert Customer.objects.filter(pk=customer.pk).exists()
