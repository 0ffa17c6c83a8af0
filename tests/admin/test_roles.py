"""The roles (groups made by the data migration) and the permission every operation checks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from customers.models import Customer
from deployments.models import Deployment
from subscriptions.models import Refund, StripeEvent
from tests.admin.helpers import customer_url, operation_url

pytestmark = pytest.mark.django_db

# (model path, slug, roles that may open and post it)
OPERATIONS = [
    ("customers/customer", "issue-key", {"Support", "superuser"}),
    ("customers/customer", "rotate-keys", {"Support", "superuser"}),
    ("customers/customer", "revoke-key", {"Support", "superuser"}),
    ("customers/customer", "reactivate", {"Support", "superuser"}),
    ("customers/customer", "deactivate", {"superuser"}),
    ("customers/customer", "revoke-license", {"superuser"}),
    ("customers/customer", "restore-license", {"superuser"}),
    ("customers/customer", "delete", {"superuser"}),
    ("subscriptions/subscription", "refund", {"Finance", "superuser"}),
    ("subscriptions/subscription", "cancel-at-period-end", {"Finance", "superuser"}),
    ("subscriptions/subscription", "keep", {"Finance", "superuser"}),
    ("subscriptions/subscription", "cancel-now", {"Finance", "superuser"}),
    ("subscriptions/subscription", "change-plan", {"Finance", "superuser"}),
    ("deployments/deployment", "retry", {"Support", "superuser"}),
    ("subscriptions/stripeevent", "replay", {"Support", "superuser"}),
]
ROLES = ["Support", "Finance", "superuser", None]


def _object_pk(model: str, customer: Customer) -> int:
    if model == "customers/customer":
        return customer.pk
    if model == "subscriptions/subscription":
        return customer.subscription.pk
    if model == "deployments/deployment":
        return Deployment.objects.get(customer=customer).pk
    return StripeEvent.objects.create(
        stripe_event_id="evt_roles", type="customer.created", payload={}, status="failed"
    ).pk


@pytest.mark.parametrize(("model", "slug", "allowed"), OPERATIONS)
@pytest.mark.parametrize("role", ROLES)
def test_each_operation_checks_its_permission(admin_as, signup, model, slug, allowed, role):
    customer = Customer.objects.get(customer_id=signup().id)
    url = operation_url(model, _object_pk(model, customer), slug)

    response = admin_as(role).get(url)

    assert response.status_code == (200 if role in allowed else 403)


def test_support_cannot_refund(admin_as, signup):
    customer = Customer.objects.get(customer_id=signup().id)
    url = operation_url("subscriptions/subscription", customer.subscription.pk, "refund")
    support = admin_as("Support")

    response = support.post(url, {"rule": "remaining", "reason": "requested_by_customer"})

    assert response.status_code == 403
    assert not Refund.objects.exists()
    assert "/operation/refund/" not in support.get(customer_url(customer)).content.decode()


def test_finance_cannot_delete(admin_as, signup):
    # given a customer whose retention window has ended
    customer = Customer.objects.get(customer_id=signup().id)
    superuser = admin_as("superuser")
    superuser.post(
        operation_url("customers/customer", customer.pk, "deactivate"),
        {"refund_reason": "requested_by_customer", "delete_data": "on", "retention_days": "0"},
    )
    url = operation_url("customers/customer", customer.pk, "delete")
    finance = admin_as("Finance")

    # when Finance posts the deletion
    response = finance.post(url, {"confirm_customer_id": customer.customer_id})

    # then it is refused and the customer is still there; a superuser may
    assert response.status_code == 403
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert "/operation/delete/" not in finance.get(customer_url(customer)).content.decode()
    assert "/operation/delete/" in superuser.get(customer_url(customer)).content.decode()


def test_roles_see_everything_and_staff_without_a_role_nothing(admin_as, signup):
    customer = Customer.objects.get(customer_id=signup().id)
    for role in ("Support", "Finance"):
        client = admin_as(role)
        for path in (
            customer_url(customer),
            "/admin/subscriptions/refund/",
            "/admin/licensing/licensehistory/",
            "/admin/usage/usagereport/",
            "/admin/deployments/deployment/",
            "/admin/customers/auditlog/",
        ):
            assert client.get(path).status_code == 200, (role, path)
    assert admin_as(None).get(customer_url(customer)).status_code == 403


def test_groups_hold_exactly_their_operations(roles):
    def operations(group):
        return {
            f"{p.content_type.app_label}.{p.codename}"
            for p in group.permissions.select_related("content_type")
            if not p.codename.startswith("view_")
        }

    assert operations(roles["Support"]) == {
        "deployments.retry_deployment",
        "subscriptions.replay_stripeevent",
        "customers.reactivate_customer",
        "customers.manage_api_keys",
    }
    assert operations(roles["Finance"]) == {
        "customers.issue_refund",
        "customers.cancel_subscription",
        "customers.change_plan",
    }
    views = {p.codename for p in roles["Support"].permissions.all()}
    assert {"view_customer", "view_subscription", "view_deployment", "view_usagereport"} <= views


def test_the_migration_makes_the_roles_on_a_fresh_database(tmp_path):
    """`manage.py migrate` on an empty database (the real migration, with the permissions
    that are otherwise made only after all migrations ran)."""
    database = tmp_path / "fresh.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT g.name, ct.app_label || '.' || p.codename FROM auth_group g "
            "JOIN auth_group_permissions gp ON gp.group_id = g.id "
            "JOIN auth_permission p ON p.id = gp.permission_id "
            "JOIN django_content_type ct ON ct.id = p.content_type_id"
        ).fetchall()
    granted = {(name, permission) for name, permission in rows}
    assert ("Finance", "customers.issue_refund") in granted
    assert ("Support", "customers.manage_api_keys") in granted
    assert ("Support", "customers.view_customer") in granted
    assert ("Finance", "subscriptions.view_refund") in granted
    assert ("Support", "customers.issue_refund") not in granted
    assert ("Finance", "customers.delete_customer_data") not in granted
