"""Stripe webhook intake: verify the signature, store each event once."""

from __future__ import annotations

from datetime import UTC, datetime

from subscriptions.models import StripeEvent


def stripe_event_record(*, event: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event once by its Stripe id; (row, created)."""
    created_ts = event.get("created")
    return StripeEvent.objects.get_or_create(
        stripe_event_id=event["id"],
        defaults={
            "type": event["type"],
            "stripe_created": datetime.fromtimestamp(created_ts, tz=UTC)
            if isinstance(created_ts, int)
            else None,
            "payload": event,
        },
    )
