"""Signed webhooks whose payload is hard to store or read: stored where it can be, answered
400 where it cannot, never 500 (Stripe would retry a 500 for three days)."""

from __future__ import annotations

import json

import pytest

from subscriptions.models import StripeEvent
from tests.helpers import WEBHOOK_SECRET, post_signed_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]


def test_a_nul_character_in_a_signed_event_is_stored_and_answered(client):
    # given an event whose description holds U+0000 (PostgreSQL refuses it in text and JSON)
    event = {
        "id": "evt_nul_1",
        "type": "product.created",
        "created": 1_700_000_000,
        "data": {"object": {"id": "prod_1", "description": "before\u0000after"}},
    }

    response = post_signed_webhook(client, event)

    # then it is stored (with the NUL replaced) and answered as any event is
    assert response.status_code == 200, response.content
    assert response.json()["id"] == "evt_nul_1"
    stored = StripeEvent.objects.get(stripe_event_id="evt_nul_1")
    assert stored.payload["data"]["object"]["description"] == "before\ufffdafter"
    assert stored.status == StripeEvent.Status.IGNORED


def test_a_nul_character_in_a_key_is_stored_too(client):
    event = {"id": "evt_nul_2", "type": "product.created", "data": {"object": {"a\u0000b": 1}}}
    response = post_signed_webhook(client, event)
    assert response.status_code == 200, response.content
    assert StripeEvent.objects.get(stripe_event_id="evt_nul_2").payload["data"]["object"] == {
        "a\ufffdb": 1
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
            "nested too deeply",
            id="deep-nesting",
        ),
        pytest.param(b"not json at all", "is not JSON", id="not-json"),
        pytest.param(json.dumps([1, 2]).encode(), "is not a Stripe event", id="not-an-event"),
        pytest.param(json.dumps({"type": "x"}).encode(), "is not a Stripe event", id="no-id"),
    ],
)
def test_a_signed_payload_that_cannot_be_read_is_a_400(client, payload, message):
    response = post_signed_webhook(client, payload)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Malformed event"
    assert message in body["message"]
    assert StripeEvent.objects.count() == 0
