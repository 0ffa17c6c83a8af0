"""The operations that need no Stripe, through the admin's own pages: the confirmation page,
then the form posted as staff would, the service's effect and the audit row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import AuditLog, Customer, DeletedCustomer
from deployments.models import Deployment
from subscriptions.models import StripeEvent
from tests.admin.helpers import customer_url, operation_url, page_messages
from tests.helpers import customer_client

pytestmark = pytest.mark.django_db

CUSTOMER = "customers/customer"


@pytest.fixture
def customer(signup):
    signed_up = signup()
    row = Customer.objects.get(customer_id=signed_up.id)
    row.signed_up = signed_up
    return row


def _audited(customer, action: str, actor: str) -> bool:
    return AuditLog.objects.filter(customer=customer, action=action, actor=actor).exists()


def test_issue_api_key_shows_it_once_and_audits(admin_as, customer):
    # given Support on the confirmation page
    client = admin_as("Support")
    url = operation_url(CUSTOMER, customer.pk, "issue-key")
    page = client.get(url)
    assert page.status_code == 200
    assert "What will happen" in page.content.decode()

    # when the form is posted
    response = client.post(url, {"name": "edge gateway"})

    # then the new key is on this page only, and it works
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    issued = customer.api_keys.get(name="edge gateway")
    content = response.content.decode()
    raw_key = content.split('id="operation-secret">')[1].split("<")[0]
    assert raw_key.startswith(issued.prefix + "_")
    assert customer_client(raw_key).get(f"/api/customers/{customer.customer_id}").status_code == 200
    assert raw_key not in client.get(customer_url(customer)).content.decode()
    assert _audited(customer, "api_key.issued", "staff:support")


def test_rotate_revokes_every_key_and_issues_one(admin_as, customer):
    client = admin_as("Support")
    old_key = customer.signed_up.key

    response = client.post(operation_url(CUSTOMER, customer.pk, "rotate-keys"), {"name": ""})

    raw_key = response.content.decode().split('id="operation-secret">')[1].split("<")[0]
    path = f"/api/customers/{customer.customer_id}"
    assert customer_client(old_key).get(path).status_code == 401
    assert customer_client(raw_key).get(path).status_code == 200
    assert _audited(customer, "api_key.rotated", "staff:support")


def test_revoke_one_api_key(admin_as, customer):
    client = admin_as("Support")
    key = customer.api_keys.get()

    response = client.post(operation_url(CUSTOMER, customer.pk, "revoke-key"), {"key": key.prefix})

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert _audited(customer, "api_key.revoked", "staff:support")
    # nothing left to revoke: the operation says so and is not offered
    page = client.get(operation_url(CUSTOMER, customer.pk, "revoke-key"))
    assert "has no live API key" in page.content.decode()


def test_revoke_and_restore_the_license(admin_as, customer):
    client = admin_as("superuser")
    license_path = f"/api/licenses/{customer.customer_id}"
    instance = customer.signed_up.client

    response = client.post(
        operation_url(CUSTOMER, customer.pk, "revoke-license"), {"reason": "chargeback"}
    )
    assert response.status_code == 302
    assert instance.get(license_path).status_code == 403
    assert _audited(customer, "license.revoked", "staff:superuser")

    response = client.post(operation_url(CUSTOMER, customer.pk, "restore-license"), {})
    assert response.status_code == 302
    assert instance.get(license_path).status_code == 200
    assert _audited(customer, "license.restored", "staff:superuser")


def test_deactivate_then_reactivate(admin_as, customer):
    # when a superuser deactivates the trial customer with a 30-day retention
    response = admin_as("superuser").post(
        operation_url(CUSTOMER, customer.pk, "deactivate"),
        {
            "cancel_subscription": "on",
            "refund_reason": "requested_by_customer",
            "delete_data": "on",
            "retention_days": "30",
        },
        follow=True,
    )

    # then it is deactivated and its deletion scheduled
    assert "deactivated" in page_messages(response)
    customer.refresh_from_db()
    assert not customer.is_active
    assert customer.scheduled_deletion > timezone.now() + timedelta(days=29)
    assert _audited(customer, "customer.deactivated", "staff:superuser")

    # when Support reactivates it
    response = admin_as("Support").post(
        operation_url(CUSTOMER, customer.pk, "reactivate"), {}, follow=True
    )

    # then it is active again
    assert "reactivated" in page_messages(response)
    customer.refresh_from_db()
    assert customer.is_active
    assert customer.scheduled_deletion is None
    assert _audited(customer, "customer.reactivated", "staff:support")


def test_delete_now_only_after_the_retention_window(admin_as, customer):
    client = admin_as("superuser")
    delete_url = operation_url(CUSTOMER, customer.pk, "delete")

    # an active customer: not offered, and a post deletes nothing
    response = client.post(delete_url, {"confirm_customer_id": customer.customer_id})
    assert "has no deletion due" in page_messages(response)
    assert Customer.objects.filter(pk=customer.pk).exists()

    # deactivated with no retention: due now
    client.post(
        operation_url(CUSTOMER, customer.pk, "deactivate"),
        {"refund_reason": "requested_by_customer", "delete_data": "on", "retention_days": "0"},
    )
    # the wrong id is refused by the form
    response = client.post(delete_url, {"confirm_customer_id": "cust_wrong"})
    assert "That is not this customer" in response.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()

    # the right one deletes it, as the sweep would
    response = client.post(delete_url, {"confirm_customer_id": customer.customer_id}, follow=True)
    assert "deleted" in page_messages(response)
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert DeletedCustomer.objects.count() == 1
    assert AuditLog.objects.filter(action="customer.deleted", actor="staff:superuser").exists()


def test_retry_a_failed_deployment(admin_as, customer, django_capture_on_commit_callbacks):
    deployment = Deployment.objects.get(customer=customer)
    url = operation_url("deployments/deployment", deployment.pk, "retry")
    client = admin_as("Support")

    # a deployment that did not fail: refused, nothing changes
    before = deployment.celery_task_id
    response = client.post(url, {})
    assert "only a failed deployment is retried" in page_messages(response)
    deployment.refresh_from_db()
    assert deployment.celery_task_id == before

    # a failed one runs again (tasks run in-process here)
    Deployment.objects.filter(pk=deployment.pk).update(status="failed", last_error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {}, follow=True)
    assert "Retrying" in page_messages(response)
    deployment.refresh_from_db()
    assert deployment.celery_task_id != before
    assert deployment.status == "deployed"
    assert _audited(customer, "deployment.retried", "staff:support")


def test_replay_a_failed_stripe_event(admin_as):
    event = StripeEvent.objects.create(
        stripe_event_id="evt_admin_replay",
        type="customer.created",
        payload={"id": "evt_admin_replay", "type": "customer.created", "data": {"object": {}}},
        status=StripeEvent.Status.FAILED,
        attempts=1,
        last_error="RuntimeError: database was down",
    )
    client = admin_as("Support")
    url = operation_url("subscriptions/stripeevent", event.pk, "replay")
    assert "database was down" in client.get(url).content.decode()

    response = client.post(url, {}, follow=True)

    event.refresh_from_db()
    assert event.status == StripeEvent.Status.IGNORED
    assert event.attempts == 2
    assert "evt_admin_replay: ignored" in page_messages(response).lower()
    assert AuditLog.objects.filter(
        action="stripe.event_replayed", actor="staff:support", metadata__status="ignored"
    ).exists()
    # processed now: replaying again is refused
    assert "only failed or pending events replay" in client.get(url).content.decode()


def test_a_trial_is_canceled_at_its_end_kept_or_canceled_now(admin_as, customer):
    client = admin_as("Finance")
    subscription = customer.subscription

    client.post(
        operation_url("subscriptions/subscription", subscription.pk, "cancel-at-period-end"), {}
    )
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at_period_end) == ("trialing", True)

    client.post(operation_url("subscriptions/subscription", subscription.pk, "keep"), {})
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end

    # a trial has nothing to refund: asking for one cancels nothing
    url = operation_url("subscriptions/subscription", subscription.pk, "cancel-now")
    response = client.post(
        url,
        {
            "issue_refund": "on",
            "rule": "prorated",
            "reason": "requested_by_customer",
            "request_token": "t1",
        },
    )
    assert "No payment found for" in page_messages(response)
    subscription.refresh_from_db()
    assert subscription.status == "trialing"

    response = client.post(
        url,
        {"rule": "prorated", "reason": "requested_by_customer", "request_token": "t2"},
        follow=True,
    )
    assert "canceled now, no refund" in page_messages(response)
    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert _audited(customer, "subscription.canceled", "staff:finance")
