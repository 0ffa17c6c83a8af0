import re

import pytest
from django.core.management import CommandError, call_command

from customers.models import AuditLog, Customer
from licensing.models import LicenseHistory
from subscriptions import stripe_api
from tests.helpers import paid_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_browser(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-" + "x" * 10)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/customers/customer/",
        "/admin/customers/customerapikey/",
        "/admin/subscriptions/subscription/",
        "/admin/licensing/licensehistory/",
        "/admin/deployments/deployment/",
    ],
)
def test_admin_changelists_render_with_data(staff_browser, signup, url):
    signup()
    response = staff_browser.get(url)
    assert response.status_code == 200


def test_admin_customer_search_and_filters(staff_browser, signup):
    alice = signup(email="alice@example.com")
    signup(email="bob@example.com")
    response = staff_browser.get("/admin/customers/customer/?q=alice&subscription__status=trialing")
    content = response.content.decode()
    assert alice.id in content
    assert "bob@example.com" not in content


def test_admin_never_shows_key_secrets_and_history_is_read_only(staff_browser, signup):
    signed_up = signup()
    customer = Customer.objects.get(customer_id=signed_up.id)
    page = staff_browser.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert signed_up.key not in page
    assert customer.api_keys.get().prefix in page
    row = LicenseHistory.objects.get(customer=customer)
    assert staff_browser.get("/admin/licensing/licensehistory/add/").status_code == 403
    response = staff_browser.post(
        f"/admin/licensing/licensehistory/{row.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert LicenseHistory.objects.filter(pk=row.pk).exists()


def test_admin_requires_staff(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="pw-" + "x" * 10)
    client.force_login(user)
    response = client.get("/admin/customers/customer/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_customer_command_add_list_upgrade(capsys):
    call_command(
        "customer",
        "add",
        "--email",
        "cli@example.com",
        "--name",
        "Cli User",
        "--company",
        "Cli Inc",
    )
    out = capsys.readouterr().out
    customer = Customer.objects.get(email="cli@example.com")
    assert customer.customer_id in out
    assert "(shown once)" in out

    call_command("customer", "list")
    listing = capsys.readouterr().out
    assert "cli@example.com" in listing
    assert "trialing" in listing

    call_command(
        "customer", "upgrade", "--id", customer.customer_id, "--plan", "professional", "--grant"
    )
    out = capsys.readouterr().out
    assert "maxDevices 50" in out
    assert "granted by staff without payment" in out
    assert AuditLog.objects.filter(
        customer=customer, action="subscription.plan_granted", actor="command:customer upgrade"
    ).exists()
    customer.subscription.refresh_from_db()
    assert (customer.subscription.plan, customer.subscription.status) == ("professional", "active")


def test_customer_command_refuses_duplicates_and_unknown_ids():
    call_command("customer", "add", "--email", "dup@example.com")
    with pytest.raises(CommandError, match="already exists"):
        call_command("customer", "add", "--email", "DUP@example.com")
    with pytest.raises(CommandError, match="No customer"):
        call_command("customer", "upgrade", "--id", "cust_missing", "--plan", "starter")


def test_ensure_staff_creates_one_login_once(capsys, django_user_model, monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_staff")
    assert "shown only this once" in capsys.readouterr().out
    call_command("ensure_staff")
    second = capsys.readouterr().out
    assert "exists" in second
    assert "st_" not in second
    assert django_user_model.objects.filter(is_staff=True).count() == 1


def test_ensure_staff_prints_a_working_staff_token_once(
    api_client, capsys, django_user_model, monkeypatch
):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-dev-password")
    call_command("ensure_staff")
    printed = capsys.readouterr().out
    token = re.search(r"Staff API token of 'admin': (st_\S+)", printed).group(1)

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/customers").status_code == 200


def test_staff_token_command_issues_a_working_token(api_client, django_user_model, capsys):
    django_user_model.objects.create_user("ops", password="x" * 12, is_staff=True)
    call_command("staff_token", "--user", "ops")
    token = capsys.readouterr().out.strip()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/customers").status_code == 200


def test_customer_upgrade_without_stripe_needs_grant(signup):
    customer = signup()
    with pytest.raises(CommandError, match="no paid Stripe subscription.*--grant"):
        call_command("customer", "upgrade", "--id", customer.id, "--plan", "professional")
    subscription = Customer.objects.get(customer_id=customer.id).subscription
    assert (subscription.plan, subscription.status) == ("starter", "trialing")


@pytest.mark.django_db(transaction=True)
def test_customer_upgrade_of_a_paying_customer_goes_through_stripe(
    signup, stripe_sim, capsys, django_capture_on_commit_callbacks
):
    # given a customer paying for professional through Stripe
    customer = paid_customer(signup, stripe_sim, plan="professional")

    # when staff upgrade them on the command line
    with django_capture_on_commit_callbacks(execute=True):
        call_command("customer", "upgrade", "--id", customer.id, "--plan", "enterprise")

    # then Stripe's subscription changed (with proration), and the license followed
    assert "through Stripe, with proration" in capsys.readouterr().out
    subscription = Customer.objects.get(customer_id=customer.id).subscription
    stripe_subscription = stripe_api.subscription_retrieve(subscription.stripe_subscription_id)
    plan_item = next(
        item
        for item in stripe_subscription["items"]["data"]
        if item["price"]["lookup_key"] == "iotistic_enterprise_monthly"
    )
    assert plan_item["price"]["id"] == subscription.stripe_price_id
    assert subscription.plan == "enterprise"
    assert LicenseHistory.objects.filter(
        customer__customer_id=customer.id, action="upgraded", plan="enterprise"
    ).exists()
    assert AuditLog.objects.filter(
        customer__customer_id=customer.id,
        action="subscription.plan_changed",
        actor="command:customer upgrade",
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_customer_upgrade_refuses_a_grant_to_a_paying_customer(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim, plan="starter")
    with pytest.raises(CommandError, match="pays through Stripe"):
        call_command("customer", "upgrade", "--id", customer.id, "--plan", "enterprise", "--grant")
    assert Customer.objects.get(customer_id=customer.id).subscription.plan == "starter"


def test_customer_list_says_when_it_shows_only_some(signup, capsys):
    for _ in range(3):
        signup()
    call_command("customer", "list", "--limit", "2")
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("cust_")]) == 2
    assert "Showing the newest 2 of 3 customers; pass --limit N for more." in out
    call_command("customer", "list")
    assert "Showing the newest" not in capsys.readouterr().out
