"""The staff's dj-stripe mirror, fed from our webhook inbox and backfilled, over HTTP against the
Stripe simulator (dj-stripe calls it through the `stripe` library's global client)."""

from __future__ import annotations

import io
import re

import stripe
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djstripe import models as dj

from customers.models import AuditLog, Customer
from subscriptions.mirror import BACKFILL_MODELS, customer_billing_mirror
from subscriptions.models import StripeEvent
from subscriptions.tasks import stripe_mirror_backfill_task
from tests.helpers import (
    MIRROR_KEY,
    paid_customer,
    post_signed_webhook,
    stripe_invoices_of,
    upgraded_and_refunded,
)


def _secret_rows(secret: str) -> list[str]:
    """Every row of every table (ours and dj-stripe's) that holds `secret` anywhere."""
    found = []
    for model in apps.get_models():
        for row in model._default_manager.values():
            if secret in repr(row):
                found.append(f"{model._meta.label}: {row.get('id', row.get('pk'))}")
    return found


def test_mirror_holds_invoices_payments_charges_and_refunds_after_checkout_upgrade_refund(
    signup, mirrored_sim, staff_client, settings
):
    # given a customer who paid, upgraded (a proration) and got a refund across both payments
    customer = upgraded_and_refunded(signup, mirrored_sim, staff_client)
    sim = mirrored_sim
    row = Customer.objects.get(customer_id=customer.id)
    stripe_invoices = stripe_invoices_of(sim, customer.id)
    stripe_charges = [c for c in sim.state.all("charge") if c["customer"] == row.stripe_customer_id]
    stripe_refunds = sim.state.all("refund")
    assert len(stripe_invoices) == 2
    assert len(stripe_charges) == 2
    assert len(stripe_refunds) == 2

    # then dj-stripe's tables hold them, as Stripe has them now (refunded amounts included)
    assert dj.Customer.objects.get(id=row.stripe_customer_id).email == customer.email
    subscription_id = row.subscription.stripe_subscription_id
    subscription = dj.Subscription.objects.get(id=subscription_id)
    assert subscription.stripe_data["status"] == "active"
    assert {i.id for i in dj.Invoice.objects.filter(customer_id=row.stripe_customer_id)} == {
        i["id"] for i in stripe_invoices
    }
    for charge in stripe_charges:
        mirrored = dj.Charge.objects.get(id=charge["id"])
        assert mirrored.stripe_data["amount_refunded"] == charge["amount_refunded"] > 0
    assert {r.id for r in dj.Refund.objects.all()} == {r["id"] for r in stripe_refunds}

    # and the selector shows them to staff, newest first, with the invoice payments
    mirror = customer_billing_mirror(row)
    assert [(i.id, i.status, i.amount_paid) for i in mirror.invoices] == [
        (i["id"], "paid", i["amount_paid"]) for i in stripe_invoices
    ]
    assert mirror.invoices[-1].amount_paid == 9900
    assert {i.subscription_id for i in mirror.invoices} == {subscription_id}
    invoice_payments = sim.state.all("invoice_payment")
    assert sorted((p.invoice_id, p.amount_paid, p.payment_intent_id) for p in mirror.payments) == (
        sorted(
            (p["invoice"], p["amount_paid"], p["payment"]["payment_intent"])
            for p in invoice_payments
        )
    )
    assert [(c.id, c.amount, c.amount_refunded) for c in mirror.charges] == [
        (c["id"], c["amount"], c["amount_refunded"]) for c in stripe_charges
    ]
    assert sorted(r.amount for r in mirror.refunds) == sorted(r["amount"] for r in stripe_refunds)
    assert sum(r.amount for r in mirror.refunds) == stripe_invoices[0]["amount_paid"] + 1000
    assert all(r.status == "succeeded" for r in mirror.refunds)
    assert mirror.mirrored_at is not None
    # no dashboard links for the simulator
    assert {i.dashboard_url for i in mirror.invoices} | {
        c.dashboard_url for c in mirror.charges
    } == {""}

    # and the key is in no table, nor any failure recorded
    assert not dj.APIKey.objects.exists()
    assert _secret_rows(MIRROR_KEY) == []
    assert not AuditLog.objects.filter(action="stripe.mirror_failed").exists()

    # and with a real Stripe key (against api.stripe.com), each row links to the dashboard
    settings.STRIPE_SECRET_KEY = "sk_live_" + "x" * 30
    settings.STRIPE_API_BASE = ""
    with CaptureQueriesContext(connection) as queries:
        linked = customer_billing_mirror(row)
    # invoices, charges, refunds: each list with its account, no query per row
    assert len(queries) == 3, [q["sql"] for q in queries]
    account = dj.Account.objects.get().id
    assert linked.invoices[0].dashboard_url == (
        f"https://dashboard.stripe.com/{account}/test/invoices/{linked.invoices[0].id}"
    )
    assert linked.charges[0].dashboard_url.endswith(f"/payments/{linked.charges[0].id}")
    assert linked.refunds[0].dashboard_url.startswith("https://dashboard.stripe.com/")


def test_a_mirror_failure_is_recorded_and_never_fails_the_event(signup, mirrored_sim, live_server):
    # given a customer, and an event we ignore that names an invoice Stripe does not have
    customer = paid_customer(signup, mirrored_sim, "starter")
    stripe_customer = Customer.objects.get(customer_id=customer.id).stripe_customer_id
    event = {
        "id": "evt_mirror_missing",
        "object": "event",
        "type": "invoice.finalized",
        "created": mirrored_sim.now(),
        "data": {"object": {"id": "in_missing", "object": "invoice", "customer": stripe_customer}},
    }

    # when Stripe delivers it
    answer = post_signed_webhook(live_server.url, event)

    # then our handling answered 200 and stored the event as handled, and the mirror's failure
    # is logged in the audit log with what failed and why
    assert answer.status_code == 200, answer.content
    assert StripeEvent.objects.get(stripe_event_id="evt_mirror_missing").status == "ignored"
    failure = AuditLog.objects.get(action="stripe.mirror_failed")
    assert failure.actor == "stripe:evt_mirror_missing"
    assert failure.customer.customer_id == customer.id
    [(kind, object_id, why)] = failure.metadata["failed"]
    assert (kind, object_id) == ("invoice", "in_missing")
    assert "No such invoice" in why
    assert not dj.APIKey.objects.exists()


def test_backfill_fills_the_mirror_from_stripe_without_keeping_the_key(
    signup, stripe_sim, staff_client, settings, monkeypatch
):
    # given Stripe objects made while the mirror could not run (a key dj-stripe refuses)
    customer = upgraded_and_refunded(signup, stripe_sim, staff_client)
    assert not dj.Invoice.objects.exists()
    row = Customer.objects.get(customer_id=customer.id)
    settings.STRIPE_SECRET_KEY = MIRROR_KEY
    monkeypatch.setattr(stripe, "api_base", stripe_sim.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "default_http_client", None)  # the mirror sets its own

    # when dj-stripe's own command syncs the mirrored models
    out, err = io.StringIO(), io.StringIO()
    call_command("djstripe_sync_models", *BACKFILL_MODELS, stdout=out, stderr=err)

    # then every one of them synced without an error ...
    assert err.getvalue() == ""
    for name in BACKFILL_MODELS:
        assert re.search(rf"Synced \d+ {name} for sk_test_\.\.\.", out.getvalue()), name
        assert apps.get_model("djstripe", name).objects.exists(), name
    assert dj.Invoice.objects.count() == 2
    assert dj.Charge.objects.count() == 2
    assert dj.Refund.objects.count() == 2
    # ... but the command kept its key in dj-stripe's APIKey table, and invoices lack payments
    assert dj.APIKey.objects.filter(secret=MIRROR_KEY).exists()
    assert customer_billing_mirror(row).payments == []

    # when the backfill task runs (the same command, then invoices with their payments)
    stripe_mirror_backfill_task()

    # then the mirror is whole and no table holds the key
    mirror = customer_billing_mirror(row)
    assert len(mirror.invoices) == 2
    assert sorted(p.amount_paid for p in mirror.payments) == sorted(
        i.amount_paid for i in mirror.invoices
    )
    assert len(mirror.charges) == 2
    assert len(mirror.refunds) == 2
    assert _secret_rows(MIRROR_KEY) == []
    assert not AuditLog.objects.filter(action="stripe.mirror_failed").exists()


def test_the_mirror_stays_empty_without_a_key_dj_stripe_accepts(signup, stripe_sim):
    # the suite's own key (sk_test_flows) is too short for dj-stripe: the mirror skips quietly
    paid_customer(signup, stripe_sim, "starter")

    assert not dj.Customer.objects.exists()
    assert not AuditLog.objects.filter(action="stripe.mirror_failed").exists()


def test_dj_stripe_is_installed_without_its_editable_admin_pages():
    from django.contrib import admin

    assert apps.get_app_config("djstripe").get_models()
    assert not [m for m in admin.site._registry if m._meta.app_label == "djstripe"]
