"""Offboarding keeps its records honest: updated_at moves on deactivation and reactivation,
and a deactivated paying customer's license revocation names the deactivation."""

from __future__ import annotations

import pytest

from customers.models import Customer
from licensing.models import LicenseRevocation
from tests.helpers import paid_customer, staff_api_client


@pytest.mark.django_db
def test_updated_at_moves_on_deactivation_and_reactivation(
    signup, django_capture_on_commit_callbacks
):
    customer = signup()
    staff = staff_api_client()
    created = Customer.objects.get(customer_id=customer.id).updated_at

    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/api/subscriptions/deactivate", {"customer_id": customer.id}, format="json")
    deactivated = Customer.objects.get(customer_id=customer.id).updated_at
    assert deactivated > created

    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/api/subscriptions/reactivate", {"customer_id": customer.id}, format="json")
    assert Customer.objects.get(customer_id=customer.id).updated_at > deactivated


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_paying_customers_revocation_names_the_deactivation(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim, plan="starter")

    response = staff_api_client().post(
        "/api/subscriptions/deactivate", {"customer_id": customer.id}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["result"]["subscriptionCanceled"] is True
    revocation = LicenseRevocation.objects.get(customer__customer_id=customer.id)
    assert (revocation.reason, revocation.revoked_by) == ("Customer deactivated", "deactivation")
