"""Links in customer emails: each opens a page of this service that says what will happen and
does it on confirmation; a used, expired or tampered link gets a clear page, not JSON."""

from __future__ import annotations

import re
import time

import pytest
from django.core import mail, signing

from core.plans import PLANS
from customers.models import AuditLog, Customer
from lifecycle import links
from tests.helpers import paid_customer, staff_api_client

LINK = re.compile(r"https?://[^/\s]+(/links/[^\s\"<]+)")


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "https://billing.example.com"


def _links_in_last_mail() -> list[str]:
    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    found = LINK.findall(message.body)
    assert found == LINK.findall(html)  # the same links in the text and the HTML part
    return found


def _deactivate(customer_id: str, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api_client().post(
            "/api/subscriptions/deactivate", {"customer_id": customer_id}, format="json"
        )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_deactivation_email_link_asks_for_reactivation(
    client, signup, django_capture_on_commit_callbacks, settings
):
    settings.EMAIL_LINK_REACTIVATION = "request"
    customer = signup()
    _deactivate(customer.id, django_capture_on_commit_callbacks)
    (path,) = set(_links_in_last_mail())

    page = client.get(path)
    assert page.status_code == 200
    assert "Ask for reactivation" in page.content.decode()
    assert page["Content-Type"].startswith("text/html")

    done = client.post(path)
    assert done.status_code == 200
    assert "We have your request" in done.content.decode()
    assert not Customer.objects.get(customer_id=customer.id).is_active  # staff decide
    assert AuditLog.objects.filter(
        customer__customer_id=customer.id, action="customer.reactivation_requested"
    ).exists()

    again = client.post(path)
    assert again.status_code == 410
    assert "already been used" in again.content.decode()


@pytest.mark.django_db
def test_reactivation_link_in_immediate_mode_reactivates(
    client, signup, django_capture_on_commit_callbacks, settings
):
    settings.EMAIL_LINK_REACTIVATION = "immediate"
    customer = signup()
    _deactivate(customer.id, django_capture_on_commit_callbacks)
    (path,) = set(_links_in_last_mail())

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(path)

    assert done.status_code == 200
    assert "active again" in done.content.decode()
    assert Customer.objects.get(customer_id=customer.id).is_active
    # the confirmation email that follows links to choosing a plan
    assert mail.outbox[-1].subject == "Your Iotistic account is active again"
    (plan_path,) = set(_links_in_last_mail())
    assert "Choose a plan" in client.get(plan_path).content.decode()


@pytest.mark.django_db(transaction=True)
def test_graceful_cancellation_email_links_to_keeping_the_subscription(client, signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim, plan="starter")
    response = customer.client.post(
        "/api/subscriptions/cancel-at-period-end", {"customer_id": customer.id}, format="json"
    )
    assert response.status_code == 200
    keep_path = next(
        path
        for path in _links_in_last_mail()
        if links.link_read(path.split("/")[-1]).purpose == "keep"
    )

    page = client.get(keep_path)
    assert "Keep your subscription" in page.content.decode()
    assert Customer.objects.get(customer_id=customer.id).subscription.cancel_at_period_end

    done = client.post(keep_path)

    assert done.status_code == 200, done.content
    assert "Your subscription continues" in done.content.decode()
    assert not Customer.objects.get(customer_id=customer.id).subscription.cancel_at_period_end
    assert client.post(keep_path).status_code == 410


@pytest.mark.django_db(transaction=True)
def test_choose_a_plan_link_opens_stripe_checkout(client, signup, stripe_sim):
    customer = signup()
    token = links.link_token(
        customer=Customer.objects.get(customer_id=customer.id), purpose=links.SUBSCRIBE
    )
    page = client.get(f"/links/{token}")
    body = page.content.decode()
    for plan in ("starter", "professional", "enterprise"):
        assert PLANS[plan].display_name in body

    response = client.post(f"/links/{token}", {"plan": "professional"})

    assert response.status_code == 303
    assert response["Location"].startswith(stripe_sim.base_url + "/checkout/")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mangle", "status", "text"),
    [
        pytest.param(
            lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
            400,
            "not valid",
            id="tampered",
        ),  # fmt: skip
        pytest.param(lambda t: "not-a-link", 400, "not valid", id="garbage"),
    ],
)
def test_a_tampered_link_shows_a_page_not_json(client, signup, mangle, status, text):
    customer = Customer.objects.get(customer_id=signup().id)
    token = links.link_token(customer=customer, purpose=links.REACTIVATE)
    response = client.get(f"/links/{mangle(token)}")
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert text in response.content.decode()


@pytest.mark.django_db
def test_an_expired_link_shows_a_page(client, signup, settings):
    customer = Customer.objects.get(customer_id=signup().id)
    settings.EMAIL_LINK_MAX_AGE_DAYS = 30

    class SignedMonthAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - 31 * 86400)

    payload = signing.loads(
        links.link_token(customer=customer, purpose=links.KEEP), salt=links.SALT
    )
    token = SignedMonthAgo(salt=links.SALT).sign_object(payload, compress=True)
    response = client.get(f"/links/{token}")
    assert response.status_code == 410
    assert "expired" in response.content.decode()


@pytest.mark.django_db
def test_a_link_is_single_purpose(client, signup):
    customer = Customer.objects.get(customer_id=signup().id)
    token = links.link_token(customer=customer, purpose=links.KEEP)
    payload = signing.loads(token, salt=links.SALT)
    assert payload["p"] == "keep"
    # a token signed for another use (another salt) is not a link
    other = signing.dumps({**payload, "p": "reactivate"}, salt="something-else")
    assert client.get(f"/links/{other}").status_code == 400
