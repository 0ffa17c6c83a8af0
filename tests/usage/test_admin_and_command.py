"""Staff views of usage: the admin (device-limit flag, consumption) and `manage.py usage`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer
from tests.usage.helpers import Instance, now_s

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_browser(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-" + "x" * 10)
    client.force_login(user)
    return client


@pytest.fixture
def fleet():
    """Trial (max 10) with 12 devices now; trial with 3; enterprise (unlimited) with 900."""
    over, within, unlimited = Instance(), Instance(), Instance(plan="enterprise", status="active")
    at = now_s() - timedelta(minutes=5)
    over.report(at=at - timedelta(minutes=30), active_devices=3, instance_id="edge-1")
    over.report(at=at, active_devices=8, instance_id="edge-1")  # latest of edge-1: 8
    over.report(at=at, active_devices=4, instance_id="edge-2")  # 8 + 4 = 12 > 10
    within.report(at=at, active_devices=3, mqtt_bytes_sent=2 * 10**9)
    unlimited.report(at=at, active_devices=900)
    return over, within, unlimited


@pytest.mark.parametrize(
    "url",
    [
        "/admin/usage/customerusage/",
        "/admin/usage/usagereport/",
        "/admin/usage/usagedaily/",
        "/admin/usage/usagebillingrecord/",
    ],
)
def test_admin_usage_changelists_render(staff_browser, fleet, url):
    assert staff_browser.get(url).status_code == 200


def test_admin_flags_customers_over_their_device_limit(staff_browser, fleet):
    over, within, unlimited = fleet
    page = staff_browser.get("/admin/usage/customerusage/?device_limit=over").content.decode()
    assert over.customer_id in page
    assert within.customer_id not in page
    assert unlimited.customer_id not in page
    page = staff_browser.get("/admin/usage/customerusage/?device_limit=within").content.decode()
    assert over.customer_id not in page
    assert within.customer_id in page
    assert unlimited.customer_id in page


def test_admin_customer_usage_page_shows_consumption(staff_browser, fleet):
    over = Customer.objects.get(customer_id=fleet[0].customer_id)
    response = staff_browser.get(f"/admin/usage/customerusage/{over.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "extra_devices" in page
    assert "Peak active devices 12 of 10" in page
    assert staff_browser.get("/admin/usage/customerusage/add/").status_code == 403


def test_usage_command_shows_one_customer(fleet):
    within = fleet[1]
    out = StringIO()
    call_command("usage", "--customer", within.customer_id, "--days", "3", stdout=out)
    text = out.getvalue()
    assert within.customer_id in text
    assert "MQTT GB" in text
    assert "TOTAL OVERAGE" in text
    total_line = next(line for line in text.splitlines() if line.startswith("TOTAL "))
    assert "2.000" in total_line  # 2 GB of MQTT
    assert len([line for line in text.splitlines() if line[:4].isdigit()]) == 3  # 3 days


def test_usage_command_all_lists_every_customer_and_flags(fleet):
    out = StringIO()
    call_command("usage", "--all", stdout=out)
    lines = out.getvalue().splitlines()
    over, within, unlimited = fleet
    over_line = next(line for line in lines if over.customer_id in line)
    assert over_line.endswith("!")
    assert not next(line for line in lines if within.customer_id in line).endswith("!")
    assert not next(line for line in lines if unlimited.customer_id in line).endswith("!")


def test_usage_command_needs_a_target_and_a_known_customer():
    with pytest.raises(CommandError):
        call_command("usage")
    with pytest.raises(CommandError, match="No customer"):
        call_command("usage", "--customer", "cust_nobody")
