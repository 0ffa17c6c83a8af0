"""The guide's graceful cancellation works for a trial: cancel at period end ends the trial at
`trial_ends_at` without converting, keep undoes it, cancel ends it now; upgrade says to start
a checkout. No Stripe is involved: a trial has no Stripe subscription."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from lifecycle.tasks import trial_end_due_task
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _post(customer, path: str):
    return customer.client.post(path, {"customer_id": customer.id}, format="json")


def _subscription(customer) -> Subscription:
    return Subscription.objects.get(customer__customer_id=customer.id)


def test_a_trial_can_be_canceled_at_period_end_and_kept(signup, django_capture_on_commit_callbacks):
    customer = signup()
    trial_end = _subscription(customer).trial_ends_at

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(customer, "/api/subscriptions/cancel-at-period-end")

    assert response.status_code == 200, response.content
    assert response.json()["subscription"]["cancel_at_period_end"] is True
    subscription = _subscription(customer)
    assert (subscription.status, subscription.cancel_at_period_end) == ("trialing", True)
    # the email names the trial's end, and the license is still the trial's
    assert mail.outbox[-1].subject == f"Your subscription will end on {trial_end:%B %d, %Y}"
    license = customer.client.get(f"/api/licenses/{customer.id}").json()["decoded"]
    assert license["plan"] == "trial"

    response = _post(customer, "/api/subscriptions/keep")
    assert response.status_code == 200
    assert _subscription(customer).cancel_at_period_end is False


def test_a_trial_canceled_at_period_end_ends_unconverted_when_it_is_over(signup):
    customer = signup()
    _post(customer, "/api/subscriptions/cancel-at-period-end")
    Subscription.objects.filter(customer__customer_id=customer.id).update(
        trial_ends_at=timezone.now() - timedelta(minutes=1)
    )
    other = signup()  # a trial that was not canceled stays as it is

    assert trial_end_due_task() == 1

    assert _subscription(customer).status == "canceled"
    assert _subscription(other).status == "trialing"
    license = customer.client.get(f"/api/licenses/{customer.id}").json()["decoded"]
    assert license["plan"] == "unlicensed"  # as for any canceled customer
    assert trial_end_due_task() == 0  # once


def test_cancel_ends_a_trial_now(signup, django_capture_on_commit_callbacks):
    customer = signup()
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(customer, "/api/subscriptions/cancel")

    assert response.status_code == 200, response.content
    subscription = _subscription(customer)
    assert subscription.status == "canceled"
    assert subscription.canceled_at is not None
    assert mail.outbox[-1].subject == "Your subscription has been canceled"


def test_upgrading_a_trial_says_to_start_a_checkout(signup):
    customer = signup()
    response = customer.client.post(
        "/api/subscriptions/upgrade",
        {"customer_id": customer.id, "new_plan": "professional"},
        format="json",
    )
    assert response.status_code == 409
    assert "POST /api/subscriptions/checkout" in response.json()["message"]
