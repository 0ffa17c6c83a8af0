"""Payments: payment methods, payment intents, charges, invoice payments, refunds."""

from __future__ import annotations

from ..state import Obj, Store
from .common import ACCOUNT_COUNTRY, base, billing_details


def payment_method(s: Store, *, brand: str, last4: str, customer_id: str | None) -> Obj:
    obj = base(s, "payment_method", "pm_")
    obj.update(
        allow_redisplay="unspecified",
        billing_details=billing_details(),
        card={
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": ACCOUNT_COUNTRY,
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": s.new_id("", 16),
            "funding": "credit",
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        customer=customer_id,
        customer_account=None,
        metadata={},
        radar_options={},
        type="card",
    )
    return obj


def payment_intent(s: Store, *, amount: int, currency: str, customer_id: str | None) -> Obj:
    obj = base(s, "payment_intent", "pi_")
    obj.update(
        amount=amount,
        amount_capturable=0,
        amount_received=0,
        application=None,
        application_fee_amount=None,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method="automatic",
        client_secret=f"{obj['id']}_secret_{s.new_id('', 25)}",
        confirmation_method="automatic",
        currency=currency,
        customer=customer_id,
        customer_account=None,
        description=None,
        excluded_payment_method_types=None,
        last_payment_error=None,
        latest_charge=None,
        metadata={},
        next_action=None,
        on_behalf_of=None,
        payment_method=None,
        payment_method_configuration_details=None,
        payment_method_options={},
        payment_method_types=["card"],
        processing=None,
        receipt_email=None,
        review=None,
        setup_future_usage=None,
        shipping=None,
        source=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="requires_payment_method",
        transfer_data=None,
        transfer_group=None,
    )
    return obj


def charge(s: Store, *, pi: Obj, pm: Obj | None, description: str | None) -> Obj:
    obj = base(s, "charge", "ch_")
    card = pm["card"] if pm else None
    obj.update(
        amount=pi["amount"],
        amount_captured=0,
        amount_refunded=0,
        application=None,
        application_fee=None,
        application_fee_amount=None,
        balance_transaction=None,
        billing_details=billing_details(),
        calculated_statement_descriptor="SIMULATOR",
        captured=False,
        currency=pi["currency"],
        customer=pi["customer"],
        description=description,
        disputed=False,
        failure_balance_transaction=None,
        failure_code=None,
        failure_message=None,
        fraud_details={},
        metadata={},
        on_behalf_of=None,
        outcome=None,
        paid=False,
        payment_intent=pi["id"],
        payment_method=pm and pm["id"],
        payment_method_details={
            "card": card
            and {
                "amount_authorized": pi["amount"],
                "authorization_code": None,
                "brand": card["brand"],
                "checks": dict(card["checks"]),
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": s.new_id("", 15),
                "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        radar_options={},
        receipt_email=None,
        receipt_number=None,
        receipt_url=None,
        refunded=False,
        review=None,
        shipping=None,
        source=None,
        source_transfer=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="pending",
        transfer_data=None,
        transfer_group=None,
    )
    return obj


def outcome(decline_code: str | None) -> Obj:
    """A charge's ``outcome``: authorized, or declined by the issuer."""
    declined = decline_code is not None
    return {
        "advice_code": "try_again_later" if declined else None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network" if declined else "approved_by_network",
        "reason": decline_code,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "The bank did not return any further details with this decline."
        if declined
        else "Payment complete.",
        "type": "issuer_declined" if declined else "authorized",
    }


def refund(s: Store, *, ch: Obj, amount: int, reason: str | None, metadata: Obj) -> Obj:
    obj = base(s, "refund", "re_")
    del obj["livemode"]  # a refund has no livemode field
    obj.update(
        amount=amount,
        balance_transaction=None,
        charge=ch["id"],
        currency=ch["currency"],
        description=None,
        destination_details={
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        metadata=metadata,
        payment_intent=ch["payment_intent"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
    )
    return obj


def invoice_payment(s: Store, *, inv: Obj, pi: Obj) -> Obj:
    """The link between an invoice and one PaymentIntent that tried to pay it."""
    return {
        "id": s.new_id("inpay_"),
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": pi["amount"],
        "created": s.now(),
        "currency": inv["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "payment": {
            "charge": None,
            "payment_intent": pi["id"],
            "payment_record": None,
            "type": "payment_intent",
        },
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }
