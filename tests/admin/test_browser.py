"""The back-office in a real browser: Debian's Chromium driven by Playwright over the live
server, a Finance user refunding a paying customer from its page. Screenshots of the
customer page and the index are saved under artifacts/browser/ (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from customers.models import AuditLog, Customer
from subscriptions.models import Refund
from tests.admin.conftest import PASSWORD
from tests.helpers import paid_customer
from tests.usage.helpers import now_s, report_body

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts" / "browser"


def _send_usage(signed_up, days: int = 12) -> None:
    """Reports every 6 hours over the last `days` days: devices rising, traffic growing."""
    reports, sent = [], 0
    for step in range(days * 4, 0, -1):
        sent += 150_000_000 * (1 + step % 3)
        reports.append(
            report_body(
                signed_up.id,
                at=now_s() - timedelta(hours=6 * step),
                active_devices=20 + (days * 4 - step) % 35,
                total_devices=60,
                mqtt_bytes_sent=sent,
            )
        )
    response = signed_up.client.post("/api/usage/report/batch", {"reports": reports}, format="json")
    assert response.status_code in (200, 201, 207), response.content


def _browse(base_url: str, customer_pk: int, username: str) -> dict:
    """Run in a thread of its own: Playwright's sync API keeps an event loop running in its
    thread, where Django's ORM refuses to work."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - imported in the thread

    seen: dict = {"console_errors": [], "failed_responses": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda message: (
                    message.type == "error"
                    and "Failed to load resource" not in message.text  # listed below, with its URL
                    and seen["console_errors"].append(message.text)
                ),
            )
            page.on(
                "response",
                lambda response: (
                    response.status >= 400
                    and not response.url.endswith("/favicon.ico")  # browsers ask; nobody serves one
                    and seen["failed_responses"].append(f"{response.status} {response.url}")
                ),
            )
            page.goto(f"{base_url}/admin/login/?next=/admin/")
            page.fill("#id_username", username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base_url}/admin/")

            page.goto(f"{base_url}/admin/customers/customer/{customer_pk}/change/")
            line = page.wait_for_selector(
                "#usage-chart-devices svg polyline[data-series=devices]", timeout=10_000
            )
            seen["device_points"] = line.get_attribute("points")
            seen["device_limit"] = page.get_attribute(
                "#usage-chart-devices svg line.bo-limit", "data-limit"
            )
            seen["traffic_points"] = page.get_attribute(
                "#usage-chart-traffic svg polyline", "points"
            )
            page.click("#usage-chart-devices ~ * button[data-days='90'], button[data-days='90']")
            seen["device_points_90"] = page.get_attribute(
                "#usage-chart-devices svg polyline", "points"
            )
            page.click("button[data-days='30']")
            page.screenshot(path=str(ARTIFACTS / "customer-page.png"), full_page=True)

            page.click("#bo-operations a:has-text('Refund')")
            page.wait_for_selector("#operation-form")
            seen["confirmation"] = page.inner_text("#content-main")
            page.check("input[name=rule][value=prorated]")
            page.click("#operation-form input[type=submit]")
            page.wait_for_url(re.compile(r".*/admin/customers/customer/\d+/change/$"))
            seen["message_bar"] = page.inner_text("ul.messagelist")
            seen["refund_rows"] = page.inner_text("#bo-refund-list tbody")
            page.screenshot(path=str(ARTIFACTS / "customer-page-after-refund.png"), full_page=True)

            page.goto(f"{base_url}/admin/")
            page.wait_for_selector("#overview")
            seen["overview"] = page.inner_text("#overview")
            page.screenshot(path=str(ARTIFACTS / "admin-index.png"), full_page=True)
        finally:
            browser.close()
    return seen


def _chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing and we are root (as `.ci/run`
    does), so `make test` on a fresh machine needs nothing by hand; else the test fails."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "chromium"],
        ):
            subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    if not CHROMIUM.exists():
        pytest.fail(
            f"Debian's Chromium is not installed at {CHROMIUM} and could not be installed: run "
            "`apt-get install -y chromium` as root (.ci/run does). This test never downloads "
            "a browser."
        )
    return CHROMIUM


def _pairs(points: str | None) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in (points or "").split()]


def test_finance_refunds_a_paying_customer_in_a_browser(
    live_server, signup, stripe_sim, staff_user
):
    _chromium()
    # given a professional customer who paid 10 days ago and reports usage, and Finance
    signed_up = paid_customer(signup, stripe_sim, "professional", days_ago=10)
    _send_usage(signed_up)
    customer = Customer.objects.get(customer_id=signed_up.id)
    finance = staff_user("Finance")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # when Finance opens the customer and issues a pro-rated refund through the page
    with ThreadPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(_browse, live_server.url, customer.pk, finance.username).result(
            timeout=240
        )

    # then the chart was drawn from data, with the plan's limit, for 30 and 90 days
    devices = _pairs(seen["device_points"])
    assert len(devices) == 30
    assert len(_pairs(seen["device_points_90"])) == 90
    assert len({y for _, y in devices}) > 2  # not a flat, empty line
    assert seen["device_limit"] == "50"  # professional's maxDevices
    assert len(_pairs(seen["traffic_points"])) == 30
    # the confirmation page showed the amounts, and the refund is issued and listed
    assert "Pro-rated refund now" in seen["confirmation"]
    assert "Maximum refund" in seen["confirmation"]
    refund = Refund.objects.get(customer=customer)
    assert refund.status == "succeeded"
    assert refund.requested_by == f"staff:{finance.username}"
    assert "issued (succeeded)" in seen["message_bar"]
    assert f"${refund.amount / 100:,.2f}" in seen["refund_rows"]
    assert AuditLog.objects.filter(action="refund.issued", actor="staff:finance").exists()
    # the index showed the overview, and no page broke a script or the CSP
    assert "Monthly recurring revenue: $99.00" in seen["overview"]
    assert seen["console_errors"] == []
    assert seen["failed_responses"] == []
    for name in ("customer-page.png", "customer-page-after-refund.png", "admin-index.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
