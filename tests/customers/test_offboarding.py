"""Deactivation, retention, reactivation, scheduled deletion, audit and emails."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from customers.models import AuditLog, CleanupRecord, Customer, Deactivation, DeletedCustomer
from lifecycle.deletion import cleanup_execute_due
from subscriptions.models import Refund, Subscription
from tests.helpers import half_up, paid_customer, period_days


def _deactivate(staff_client, customer_id, **fields):
    return staff_client.post(
        "/api/subscriptions/deactivate", {"customer_id": customer_id, **fields}, format="json"
    )


@pytest.mark.django_db
def test_trial_customer_deactivate_scheduled_then_reactivate(staff_client, signup):
    # given a trial customer
    trial = signup()
    customer_id = trial.id

    # when staff deactivates with a 30-day retention
    response = _deactivate(staff_client, customer_id, retention_days=30)

    # then the guide's result, a soft delete, a revoked license and a scheduled cleanup
    assert response.status_code == 200, response.content
    assert response.json()["message"] == "Customer deactivated successfully"
    result = response.json()["result"]
    assert result["customerId"] == customer_id
    assert result["subscriptionCanceled"] is True
    assert result["refundIssued"] is False
    assert result["refundAmount"] == 0
    assert result["dataScheduledForDeletion"] is True
    assert result["licenseRevoked"] is True
    customer = Customer.objects.get(customer_id=customer_id)
    assert customer.is_active is False
    assert customer.deleted_at is not None
    days = (customer.scheduled_deletion - customer.deleted_at).days
    assert days == 30
    assert result["scheduledDeletionDate"].startswith(f"{customer.scheduled_deletion:%Y-%m-%d}")
    record = CleanupRecord.objects.get(customer=customer)
    assert (record.namespace, record.status) == (customer.namespace, "scheduled")

    own = trial.client
    assert own.get(f"/api/customers/{customer_id}").status_code == 200  # reads still work
    rotate = own.post(f"/api/customers/{customer_id}/api-keys/rotate", {}, format="json")
    assert rotate.status_code == 403  # writes do not
    assert own.get(f"/api/licenses/{customer_id}").status_code == 403

    listed = staff_client.get("/api/subscriptions/scheduled-deletions").json()["deletions"]
    assert [row["customer_id"] for row in listed] == [customer_id]
    assert set(listed[0]) == {
        "customer_id",
        "email",
        "company_name",
        "deleted_at",
        "scheduled_deletion",
    }

    # when reactivated inside the window
    again = staff_client.post(
        "/api/subscriptions/reactivate", {"customer_id": customer_id}, format="json"
    )

    # then active, deletion canceled, license back, subscription not restored
    assert again.status_code == 200, again.content
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.scheduled_deletion is None
    record.refresh_from_db()
    assert record.status == "canceled"
    assert record.canceled_at is not None
    assert own.get(f"/api/licenses/{customer_id}").status_code == 200
    assert Subscription.objects.get(customer=customer).status == "canceled"
    assert staff_client.get("/api/subscriptions/scheduled-deletions").json()["deletions"] == []
    actions = set(AuditLog.objects.filter(customer=customer).values_list("action", flat=True))
    assert {
        "customer.created",
        "customer.deactivated",
        "license.revoked",
        "customer.reactivated",
        "license.restored",
    } <= actions


@pytest.mark.django_db
def test_reactivation_after_the_window_is_410(staff_client, signup):
    customer_id = signup().id
    _deactivate(staff_client, customer_id, retention_days=0)
    response = staff_client.post(
        "/api/subscriptions/reactivate", {"customer_id": customer_id}, format="json"
    )
    assert response.status_code == 410
    assert response.json()["error"] == "Data has been deleted"
    # and after the sweep deleted everything, still 410 (from the anonymised record)
    assert cleanup_execute_due() == 1
    response = staff_client.post(
        "/api/subscriptions/reactivate", {"customer_id": customer_id}, format="json"
    )
    assert response.status_code == 410


@pytest.mark.django_db
def test_deactivation_is_staff_only(signup):
    customer = signup()
    response = customer.client.post(
        "/api/subscriptions/deactivate", {"customer_id": customer.id}, format="json"
    )
    assert response.status_code == 403


@pytest.mark.django_db
def test_deletion_leaves_only_the_anonymised_record(staff_client, signup):
    # given a customer with history in every app, deactivated with no retention
    customer_id = signup(email="gone@example.com", company_name="Gone Ltd").id
    staff_client.get(f"/api/licenses/{customer_id}")
    _deactivate(staff_client, customer_id, retention_days=0)

    # when the deletion runs (through the staff endpoint)
    response = staff_client.post("/api/admin/execute-deletions", {}, format="json")

    # then nothing about the customer remains but the anonymised record
    assert response.json()["deleted"] == 1
    assert not Customer.objects.filter(customer_id=customer_id).exists()
    record = CleanupRecord.objects.get()
    assert (record.status, record.customer_id) == ("executed", None)
    deleted = DeletedCustomer.objects.get()
    assert deleted.namespace == record.namespace
    assert customer_id not in deleted.customer_id_hash
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if table.startswith(("django_", "auth_")):
                continue
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            dump = repr(cursor.fetchall())
            assert customer_id not in dump, table
            assert "gone@example.com" not in dump, table
            assert "Gone Ltd" not in dump, table
    assert AuditLog.objects.filter(action="customer.deleted", customer=None).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_delete_each_customer_once(signup, staff_client):
    ids = [signup().id for _ in range(4)]
    for customer_id in ids:
        _deactivate(staff_client, customer_id, retention_days=0)
    barrier = threading.Barrier(2)
    counts = []

    def sweep():
        barrier.wait()
        try:
            counts.append(cleanup_execute_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(counts) == 4
    assert DeletedCustomer.objects.count() == 4
    assert AuditLog.objects.filter(action="customer.deleted").count() == 4
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_sweep_leaves_customers_inside_their_window(staff_client, signup):
    _deactivate(staff_client, signup().id, retention_days=30)
    assert cleanup_execute_due() == 0
    in_31_days = timezone.now() + timedelta(days=31)
    assert cleanup_execute_due(now=in_31_days) == 1


@pytest.mark.django_db
def test_execute_deletions_command(staff_client, signup, capsys):
    _deactivate(staff_client, signup().id, retention_days=0)
    call_command("execute_deletions")
    assert "Deleted 1 customers" in capsys.readouterr().out


def test_paid_deactivation_with_failed_refund_completes_on_rerun(signup, stripe_sim, staff_client):
    # given a paying customer, and Stripe failing the refund once
    customer_id = paid_customer(signup, stripe_sim, days_ago=10 - 1 / 24).id
    stripe_sim.fail_next("/v1/refunds", status=500, method="POST")

    # when deactivating with a refund: the cancellation happens, the refund fails
    first = _deactivate(staff_client, customer_id, issue_refund=True, retention_days=30)
    assert first.status_code == 503, first.content
    customer = Customer.objects.get(customer_id=customer_id)
    assert customer.is_active is True  # later steps did not run
    assert Subscription.objects.get(customer=customer).status == "canceled"

    # when the same deactivation runs again
    second = _deactivate(staff_client, customer_id, issue_refund=True, retention_days=30)
    stripe_sim.wait_for_deliveries()

    # then it completes with exactly one refund and one cancellation
    assert second.status_code == 200, second.content
    result = second.json()["result"]
    assert result["refundIssued"] is True
    days = period_days(customer_id)
    assert result["refundAmount"] == half_up(9900, days - 10, days)  # 6600 if 30 days
    assert result["refundReason"] is None
    assert result["licenseRevoked"] is True
    assert len(stripe_sim.state.all("refund")) == 1
    assert Refund.objects.filter(customer=customer).count() == 1
    cancellations = stripe_sim.events("customer.subscription.deleted")
    assert len(cancellations) == 1
    assert Deactivation.objects.get(customer=customer).status == "completed"
    # and a third call changes nothing
    third = _deactivate(staff_client, customer_id, issue_refund=True, retention_days=30)
    assert third.json()["result"] == result
    assert len(stripe_sim.state.all("refund")) == 1


def test_emails_render_with_real_values(signup, stripe_sim, staff_client):
    paid = paid_customer(signup, stripe_sim, days_ago=10 - 1 / 24)
    customer_id = paid.id
    mail.outbox.clear()

    paid.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer_id}, format="json"
    )
    graceful = mail.outbox[-1]
    subscription = Subscription.objects.get(customer__customer_id=customer_id)
    end = f"{subscription.current_period_end:%B %d, %Y}"
    assert graceful.subject == f"Your subscription will end on {end}"
    assert f"will end on {end}" in graceful.body
    assert "Keep My Subscription" in graceful.alternatives[0][0]

    staff_client.post(
        "/api/subscriptions/cancel-immediate",
        {"customer_id": customer_id, "issue_refund": True},
        format="json",
    )
    immediate = mail.outbox[-1]
    refund = Refund.objects.get(customer__customer_id=customer_id)
    assert immediate.subject == "Your subscription has been canceled"
    days = period_days(customer_id)
    refunded = half_up(9900, days - 10, days)  # 6600 in a 30-day month
    assert f"${refunded / 100:,.2f}" in immediate.body
    assert refund.stripe_refund_id in immediate.body
    assert "requested_by_customer" in immediate.body

    _deactivate(staff_client, customer_id, retention_days=30)
    deactivation = mail.outbox[-1]
    assert deactivation.subject == "Your Iotistic account has been deactivated"
    assert customer_id in deactivation.body
    assert deactivation.to == [paid.email]

    staff_client.post("/api/subscriptions/reactivate", {"customer_id": customer_id}, format="json")
    welcome = mail.outbox[-1]
    assert welcome.subject == "Your Iotistic account is active again"
    assert "was not restored" in welcome.body
    assert "{{" not in "".join(m.body + m.alternatives[0][0] for m in mail.outbox)


@pytest.mark.django_db
def test_customer_command_deactivate(signup, capsys):
    customer_id = signup().id
    call_command("customer", "deactivate", "--id", customer_id, "--retention-days", "7")
    assert "deactivated" in capsys.readouterr().out
    customer = Customer.objects.get(customer_id=customer_id)
    assert (customer.scheduled_deletion - customer.deleted_at).days == 7


@pytest.mark.django_db
def test_audit_log_is_read_only_and_filterable_in_admin(client, django_user_model, signup):
    customer_id = signup().id
    user = django_user_model.objects.create_superuser("boss", "b@example.com", "pw-" + "x" * 10)
    client.force_login(user)
    page = client.get(f"/admin/customers/auditlog/?customer__customer_id={customer_id}")
    assert page.status_code == 200
    assert "customer.created" in page.content.decode()
    row = AuditLog.objects.filter(customer__customer_id=customer_id).first()
    assert client.get("/admin/customers/auditlog/add/").status_code == 403
    assert (
        client.post(f"/admin/customers/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


def test_deactivation_with_an_unpayable_refund_still_completes(signup, stripe_sim, staff_client):
    customer_id = paid_customer(signup, stripe_sim).id  # 9900 paid
    response = _deactivate(
        staff_client, customer_id, issue_refund=True, refund_amount=50_000, retention_days=30
    )
    assert response.status_code == 200, response.content
    result = response.json()["result"]
    assert result["refundIssued"] is False
    assert result["refundReason"].startswith("Refund of 50000 cents is not possible: 9900 of")
    assert result["licenseRevoked"] is True
    assert result["dataScheduledForDeletion"] is True
    assert (
        "Refund skipped" in Deactivation.objects.get(customer__customer_id=customer_id).last_error
    )
    assert stripe_sim.state.all("refund") == []


@pytest.mark.django_db
def test_sweep_survives_a_record_whose_customer_was_removed(staff_client, signup):
    first, second = signup(), signup()
    for customer in (first, second):
        _deactivate(staff_client, customer.id, retention_days=0)
    Customer.objects.get(customer_id=first.id).delete()
    assert cleanup_execute_due() == 2
    assert not Customer.objects.exists()
    assert set(CleanupRecord.objects.values_list("status", flat=True)) == {"executed"}


def test_deletion_cancels_a_live_stripe_subscription(signup, stripe_sim, staff_client):
    customer_id = paid_customer(signup, stripe_sim).id
    sub_id = Subscription.objects.get(customer__customer_id=customer_id).stripe_subscription_id
    _deactivate(staff_client, customer_id, cancel_subscription=False, retention_days=0)
    assert stripe_sim.get(sub_id)["status"] == "active"
    assert cleanup_execute_due() == 1
    assert stripe_sim.get(sub_id)["status"] == "canceled"
    assert not Customer.objects.filter(customer_id=customer_id).exists()


@pytest.mark.django_db
def test_deactivation_of_a_trial_customer_asked_to_refund_says_why_not(staff_client, signup):
    customer_id = signup().id

    response = _deactivate(staff_client, customer_id, issue_refund=True, retention_days=30)

    assert response.status_code == 200, response.content
    result = response.json()["result"]
    assert (result["refundIssued"], result["refundAmount"]) == (False, 0)
    assert result["refundReason"].startswith(f"No payment found for {customer_id}")


def test_deactivation_without_a_refund_asked_for_gives_no_reason(signup, stripe_sim, staff_client):
    customer_id = paid_customer(signup, stripe_sim).id

    result = _deactivate(staff_client, customer_id, retention_days=30).json()["result"]

    assert (result["refundIssued"], result["refundAmount"], result["refundReason"]) == (
        False,
        0,
        None,
    )
    assert stripe_sim.state.all("refund") == []


def test_deactivation_refunds_every_payment_of_the_period(signup, stripe_sim, staff_client):
    # given 9900 paid and, after an upgrade, a proration payment in the same period
    customer_id = paid_customer(signup, stripe_sim, "professional").id
    upgraded = staff_client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer_id, "new_plan": "enterprise"},
        format="json",
    )
    assert upgraded.status_code == 200, upgraded.content
    stripe_sim.wait_for_deliveries()
    paid = sum(
        p["amount_paid"] for p in stripe_sim.state.all("invoice_payment") if p["status"] == "paid"
    )

    # when deactivating with the whole amount refunded
    result = _deactivate(
        staff_client, customer_id, issue_refund=True, refund_amount=paid, retention_days=30
    ).json()["result"]

    # then both payments are refunded, the first beyond the size of the second
    assert (result["refundIssued"], result["refundAmount"], result["refundReason"]) == (
        True,
        paid,
        None,
    )
    assert sorted(r["amount"] for r in stripe_sim.state.all("refund")) == sorted(
        p["amount_paid"] for p in stripe_sim.state.all("invoice_payment") if p["status"] == "paid"
    )
    assert Refund.objects.filter(customer__customer_id=customer_id).count() == 2
