"""The simulator's own Stripe account (``GET /v1/account``): one standard account in test mode."""

from __future__ import annotations

from ..state import Obj
from .common import ACCOUNT_COUNTRY, ACCOUNT_NAME

ACCOUNT_ID = "acct_1StripeSimulatr0"
# A fixed creation time (2024-01-01 UTC): the account exists before anything made in it.
ACCOUNT_CREATED = 1_704_067_200


def account() -> Obj:
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "monthly_estimated_revenue": {"amount": 0, "currency": "usd"},
            "name": ACCOUNT_NAME,
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": ACCOUNT_COUNTRY,
        "created": ACCOUNT_CREATED,
        "default_currency": "usd",
        "details_submitted": True,
        "email": None,
        "metadata": {},
        "payouts_enabled": True,
        "settings": None,
        "type": "standard",
    }
