"""The only module that imports `stripe`: small typed functions over the Stripe API."""

from __future__ import annotations

import json

import stripe
from django.conf import settings

# Stripe's default: a signed webhook older than this is refused (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300


class WebhookSignatureError(Exception):
    pass


def webhook_event_from_request(payload: bytes, signature_header: str | None) -> dict:
    """Verify a webhook's `Stripe-Signature` against each configured secret; return the event.

    STRIPE_WEBHOOK_SECRET may list several secrets (comma-separated) while one is
    being rotated; a signature from any of them is accepted.
    """
    if not signature_header:
        raise WebhookSignatureError("Missing Stripe-Signature header.")
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets:
        raise WebhookSignatureError("No STRIPE_WEBHOOK_SECRET is configured; refusing all events.")
    text = payload.decode("utf-8", errors="replace")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature_header, secret.strip(), WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            continue
        break
    else:
        raise WebhookSignatureError("Invalid Stripe-Signature for every configured secret.")
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise WebhookSignatureError("Signed payload is not JSON.") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise WebhookSignatureError("Signed payload is not a Stripe event.")
    return event
