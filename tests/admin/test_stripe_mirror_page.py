"""The customer's admin page shows Stripe's view of its billing from the dj-stripe mirror:
invoices, invoice payments, charges and refunds after a checkout, an upgrade and a refund made
through the API against the Stripe simulator (dj-stripe syncs from it over HTTP)."""

from __future__ import annotations

import io
import re

import pytest
import stripe
from django.core.management import CommandError, call_command
from djstripe import models as dj

from customers.admin import dollars
from customers.models import Customer
from tests.admin.helpers import customer_url
from tests.helpers import MIRROR_KEY, paid_customer, stripe_invoices_of, upgraded_and_refunded


def _table_rows(content: str, table_id: str) -> list[str]:
    """The body rows of one table of the page, as HTML."""
    start = content.index(f'id="{table_id}"')
    table = content[start : content.index("</table>", start)]
    body = table[table.index("<tbody>") :]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)


def _charges_of(sim, row: Customer) -> list[dict]:
    return [c for c in sim.state.all("charge") if c["customer"] == row.stripe_customer_id]


def test_customer_page_lists_stripe_invoices_payments_charges_and_refunds(
    signup, mirrored_sim, staff_client, admin_as
):
    # given a customer who paid for professional, upgraded 10 days in and got $10 more than the
    # proration back (a refund across both payments), all through the API
    customer = upgraded_and_refunded(signup, mirrored_sim, staff_client)
    row = Customer.objects.get(customer_id=customer.id)
    invoices = stripe_invoices_of(mirrored_sim, customer.id)
    charges = _charges_of(mirrored_sim, row)
    refunds = mirrored_sim.state.all("refund")
    assert (len(invoices), len(charges), len(refunds)) == (2, 2, 2)

    # when a support agent opens the customer's page in the admin
    page = admin_as("Support").get(customer_url(row))

    # then the Stripe section lists each invoice with its status and amounts, newest first
    assert page.status_code == 200
    content = page.content.decode()
    assert f"From the dj-stripe mirror of {row.stripe_customer_id}" in content
    assert "mirror off" not in content
    invoice_rows = _table_rows(content, "bo-stripe-invoices")
    newest_first = sorted(invoices, key=lambda i: i["created"], reverse=True)
    assert len(invoice_rows) == 2
    for html, invoice in zip(invoice_rows, newest_first, strict=True):
        assert invoice["id"] in html
        assert ">paid<" in html
        assert dollars(invoice["amount_paid"]) in html
        assert invoice["billing_reason"] in html
    assert dollars(9900) in invoice_rows[1]  # the first period's professional price

    # and the payments of those invoices, each with its payment intent
    payment_rows = _table_rows(content, "bo-stripe-payments")
    invoice_payments = mirrored_sim.state.all("invoice_payment")
    assert len(payment_rows) == len(invoice_payments) == 2
    for payment in invoice_payments:
        [html] = [r for r in payment_rows if payment["id"] in r]
        assert payment["invoice"] in html
        assert payment["payment"]["payment_intent"] in html
        assert dollars(payment["amount_paid"]) in html

    # and the charges with what Stripe says was refunded from each
    charge_rows = _table_rows(content, "bo-stripe-charges")
    assert len(charge_rows) == 2
    for charge in charges:
        [html] = [r for r in charge_rows if charge["id"] in r]
        assert charge["amount_refunded"] > 0
        assert dollars(charge["amount"]) in html
        assert dollars(charge["amount_refunded"]) in html

    # and Stripe's refunds, which add up to what was asked
    refund_rows = _table_rows(content, "bo-stripe-refunds")
    assert len(refund_rows) == 2
    for refund in refunds:
        [html] = [r for r in refund_rows if refund["id"] in r]
        assert dollars(refund["amount"]) in html
        assert refund["charge"] in html
    assert sum(r["amount"] for r in refunds) == newest_first[0]["amount_paid"] + 1000
    # no dashboard links against the simulator
    assert "dashboard.stripe.com" not in content


def test_customer_page_says_when_the_mirror_is_off(signup, stripe_sim, admin_as):
    # given a customer who paid while Stripe's key is one dj-stripe refuses (the mirror is off)
    customer = paid_customer(signup, stripe_sim, "starter")
    row = Customer.objects.get(customer_id=customer.id)

    # when staff open the page
    content = admin_as("Support").get(customer_url(row)).content.decode()

    # then the Stripe section says why it is empty instead of pretending there is nothing
    assert "mirror off: dj-stripe accepts only keys shaped like Stripe" in content
    assert "No invoices mirrored." in content
    assert not dj.Invoice.objects.exists()


def test_backfill_command_fills_the_page_from_stripe(
    signup, stripe_sim, staff_client, admin_as, settings, monkeypatch
):
    # given Stripe billing made while the mirror was off
    customer = upgraded_and_refunded(signup, stripe_sim, staff_client)
    row = Customer.objects.get(customer_id=customer.id)
    assert "No invoices mirrored." in admin_as("Support").get(customer_url(row)).content.decode()
    settings.STRIPE_SECRET_KEY = MIRROR_KEY
    monkeypatch.setattr(stripe, "api_base", stripe_sim.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "default_http_client", None)  # the mirror sets its own

    # when an operator runs the backfill command
    out = io.StringIO()
    call_command("stripe_mirror_backfill", stdout=out)

    # then the page lists what Stripe has, with payments, and no key stayed behind
    assert "2 invoice(s) with payments" in out.getvalue()
    content = admin_as("Finance").get(customer_url(row)).content.decode()
    assert len(_table_rows(content, "bo-stripe-invoices")) == 2
    assert len(_table_rows(content, "bo-stripe-payments")) == 2
    assert len(_table_rows(content, "bo-stripe-refunds")) == 2
    assert not dj.APIKey.objects.exists()


def test_backfill_command_refuses_when_the_mirror_cannot_run(settings, db):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY is not set"):
        call_command("stripe_mirror_backfill", stdout=io.StringIO())


def test_index_lists_invoices_stripe_could_not_collect(signup, mirrored_sim, admin_as):
    # given two paying customers, and the renewal of one declined (its invoice stays open)
    failing = paid_customer(signup, mirrored_sim, "starter")
    paid_customer(signup, mirrored_sim, "starter")
    row = Customer.objects.get(customer_id=failing.id)
    mirrored_sim.fail_renewal(row.subscription.stripe_subscription_id)
    mirrored_sim.wait_for_deliveries()
    [open_invoice] = [
        i for i in stripe_invoices_of(mirrored_sim, failing.id) if i["status"] == "open"
    ]

    # when staff open the admin index
    content = admin_as("Support").get("/admin/").content.decode()

    # then "Needs attention" counts that invoice and links to its customer
    start = content.index('id="bo-unpaid-invoices"')
    item = content[start : content.index("</li></ul>", start)]
    assert "<strong>1</strong> open or uncollectible invoices in Stripe" in item
    assert open_invoice["id"] in item
    assert f'href="{customer_url(row)}"' in item
    assert dollars(open_invoice["amount_remaining"]) in item
