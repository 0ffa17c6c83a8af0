"""Subscriptions, invoices and their lines, checkout sessions and their line items."""

from __future__ import annotations

from ..state import Obj, Store, list_object
from .catalogue import plan
from .common import ACCOUNT_COUNTRY, ACCOUNT_NAME, base


def subscription(s: Store, *, customer_id: str, currency: str, anchor: int) -> Obj:
    obj = base(s, "subscription", "sub_")
    obj.update(
        application=None,
        application_fee_percent=None,
        automatic_tax={"disabled_reason": None, "enabled": False, "liability": None},
        billing_cycle_anchor=anchor,
        billing_cycle_anchor_config=None,
        billing_mode={
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
            "updated_at": s.now(),
        },
        billing_schedules=[],
        billing_thresholds=None,
        cancel_at=None,
        cancel_at_period_end=False,
        canceled_at=None,
        cancellation_details={"comment": None, "feedback": None, "reason": None},
        collection_method="charge_automatically",
        currency=currency,
        customer=customer_id,
        customer_account=None,
        days_until_due=None,
        default_payment_method=None,
        default_source=None,
        default_tax_rates=[],
        description=None,
        discounts=[],
        ended_at=None,
        invoice_settings={"account_tax_ids": None, "issuer": {"type": "self"}},
        latest_invoice=None,
        metadata={},
        next_pending_invoice_item_invoice=None,
        on_behalf_of=None,
        pause_collection=None,
        payment_settings={
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        pending_invoice_item_interval=None,
        pending_setup_intent=None,
        pending_update=None,
        schedule=None,
        start_date=s.now(),
        status="incomplete",
        test_clock=None,
        transfer_data=None,
        trial_end=None,
        trial_settings={"end_behavior": {"missing_payment_method": "create_invoice"}},
        trial_start=None,
    )
    return obj


def subscription_item(
    s: Store, *, sub_id: str, price_obj: Obj, quantity: int | None, period: tuple[int, int]
) -> Obj:
    return {
        "id": s.new_id("si_"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": s.now(),
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": {},
        "plan": plan(price_obj),
        "price": price_obj,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def invoice(s: Store, *, sub: Obj, customer_obj: Obj, reason: str, period: tuple[int, int]) -> Obj:
    obj = base(s, "invoice", "in_")
    obj.update(
        account_country=ACCOUNT_COUNTRY,
        account_name=ACCOUNT_NAME,
        account_tax_ids=None,
        amount_due=0,
        amount_overpaid=0,
        amount_paid=0,
        amount_paid_off_stripe=0,
        amount_remaining=0,
        amount_shipping=0,
        application=None,
        attempt_count=0,
        attempted=False,
        auto_advance=True,
        automatic_tax={
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        automatically_finalizes_at=None,
        billing_reason=reason,
        collection_method="charge_automatically",
        confirmation_secret=None,
        currency=sub["currency"],
        custom_fields=None,
        customer=customer_obj["id"],
        customer_account=None,
        customer_address=None,
        customer_email=customer_obj["email"],
        customer_name=customer_obj["name"],
        customer_phone=None,
        customer_shipping=None,
        customer_tax_exempt="none",
        customer_tax_ids=[],
        default_payment_method=None,
        default_source=None,
        default_tax_rates=[],
        description=None,
        discounts=[],
        due_date=None,
        effective_at=s.now(),
        ending_balance=None,
        footer=None,
        from_invoice=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        issuer={"type": "self"},
        last_finalization_error=None,
        latest_revision=None,
        metadata={},
        next_payment_attempt=None,
        number=None,
        on_behalf_of=None,
        parent={
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub["metadata"]),
                "subscription": sub["id"],
                "subscription_proration_date": None,
            },
            "type": "subscription_details",
        },
        payment_settings={
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        period_end=period[1],
        period_start=period[0],
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        receipt_number=None,
        rendering=None,
        shipping_cost=None,
        shipping_details=None,
        starting_balance=0,
        statement_descriptor=None,
        status="draft",
        status_transitions={
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        subtotal=0,
        subtotal_excluding_tax=0,
        test_clock=None,
        threshold_reason=None,
        total=0,
        total_discount_amounts=[],
        total_excluding_tax=0,
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=s.now(),
    )
    return obj


def invoice_line(
    s: Store,
    *,
    sub: Obj,
    item: Obj,
    price_obj: Obj,
    quantity: int | None,
    amount: int,
    description: str,
    period: tuple[int, int],
    proration: bool,
) -> Obj:
    """A subscription line: its price is named in ``pricing`` (``price`` is gone from lines)."""
    return {
        "id": s.new_id("il_"),
        "object": "line_item",
        "amount": amount,
        "currency": sub["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,  # set when the line is put on an invoice
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": s.new_id("ii_") if proration else None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "type": "price_details",
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": quantity,
        "subscription": sub["id"],
        "subtotal": amount,
        "taxes": [],
    }


def checkout_session(s: Store, *, customer_id: str | None, currency: str) -> Obj:
    obj = base(s, "checkout.session", "cs_test_")
    obj["id"] = s.new_id("cs_test_", 58)
    obj.update(
        adaptive_pricing=None,
        after_expiration=None,
        allow_promotion_codes=None,
        amount_subtotal=0,
        amount_total=0,
        automatic_tax={"enabled": False, "liability": None, "provider": None, "status": None},
        billing_address_collection=None,
        cancel_url=None,
        client_reference_id=None,
        client_secret=None,
        collected_information=None,
        consent=None,
        consent_collection=None,
        currency=currency,
        currency_conversion=None,
        custom_fields=[],
        custom_text={
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        customer=customer_id,
        customer_account=None,
        customer_creation=None if customer_id else "always",
        customer_details=None,
        customer_email=None,
        discounts=[],
        expires_at=s.now() + 86_400,
        invoice=None,
        invoice_creation=None,
        locale=None,
        metadata={},
        mode="subscription",
        origin_context=None,
        payment_intent=None,
        payment_link=None,
        payment_method_collection="always",
        payment_method_configuration_details=None,
        payment_method_options={},
        payment_method_types=["card"],
        payment_status="unpaid",
        phone_number_collection={"enabled": False},
        recovered_from=None,
        saved_payment_method_options=None,
        setup_intent=None,
        shipping_address_collection=None,
        shipping_cost=None,
        shipping_options=[],
        status="open",
        submit_type=None,
        subscription=None,
        success_url=None,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        ui_mode="hosted_page",
        url=None,
        wallet_options=None,
    )
    return obj


def checkout_line(s: Store, *, price_obj: Obj, quantity: int | None, description: str) -> Obj:
    amount = price_obj["unit_amount"] * quantity if quantity else 0
    return {
        "id": s.new_id("li_"),
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": description,
        "discounts": [],
        "metadata": {},
        "price": price_obj,
        "quantity": quantity,
        "taxes": [],
    }


def line_items_list(session: Obj) -> Obj:
    return list_object(session["_line_items"], f"/v1/checkout/sessions/{session['id']}/line_items")
