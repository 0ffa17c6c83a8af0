"""A Stripe that accepts connections and never answers: calls give up within their timeouts,
clients get a 503 in the error shape that shows no internals, and no web worker is held past
gunicorn's timeout."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
import stripe
import yaml
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from lifecycle.signup import customer_signup
from subscriptions import mirror, stripe_api
from subscriptions.models import StripeEvent
from tests.helpers import MIRROR_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hanging_stripe(settings):
    """A socket that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    settings.STRIPE_SECRET_KEY = "sk_test_hanging"
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    settings.STRIPE_READ_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_CONNECT_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    yield port
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.django_db
def test_checkout_against_a_hanging_stripe_answers_503_without_internals(hanging_stripe):
    signed_up = customer_signup(email="hang@example.com", company_name="Hang")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=signed_up.api_key.raw_key)

    started = time.monotonic()
    response = client.post(
        "/api/subscriptions/checkout",
        {"customer_id": signed_up.customer.customer_id, "plan": "starter"},
        format="json",
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "Payment provider unavailable"
    assert "could not be reached" in body["message"]
    text = response.content.decode()
    for internal in ("127.0.0.1", str(hanging_stripe), "urllib3", "HTTPConnectionPool", "Read"):
        assert internal not in text
    # it gave up after its attempts, not after the library's default 80 s each
    assert elapsed < stripe_api.worst_wait_seconds() + 5


def _gunicorn_timeouts() -> dict[str, int]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts" / "billing" / "values.yaml").read_text())
    web_args = " ".join(compose["services"]["web"]["command"])
    found = {
        "Dockerfile": re.search(r'"--timeout", "(\d+)"', dockerfile),
        "compose.yaml": re.search(r"--timeout (\d+)", web_args),
        "charts/billing": re.search(r"--timeout (\d+)", chart["web"]["gunicornArgs"]),
    }
    assert all(found.values()), found
    return {where: int(match.group(1)) for where, match in found.items()}


def test_gunicorn_timeout_is_above_the_longest_stripe_call_with_default_settings():
    # the defaults in config/settings.py, not a test's overrides
    assert django_settings.STRIPE_CONNECT_TIMEOUT_SECONDS == 3.0
    worst = stripe_api.worst_wait_seconds()
    for where, timeout in _gunicorn_timeouts().items():
        assert worst < timeout, f"{where}: gunicorn --timeout {timeout} <= Stripe's {worst} s"


@pytest.mark.django_db
def test_the_mirror_gives_up_on_a_hanging_stripe_within_our_timeouts(hanging_stripe, monkeypatch):
    # given the mirror on (a key dj-stripe accepts) and an event naming a Stripe customer, while
    # Stripe accepts connections and never answers; dj-stripe uses the library's global client
    monkeypatch.setattr(stripe, "default_http_client", None)
    monkeypatch.setattr(stripe, "max_network_retries", stripe.max_network_retries)
    # (pointed at Stripe at start-up: STRIPE_API_HOST)
    monkeypatch.setattr(stripe, "api_base", f"http://127.0.0.1:{hanging_stripe}")
    django_settings.STRIPE_SECRET_KEY = MIRROR_KEY
    event = StripeEvent.objects.create(
        stripe_event_id="evt_hanging_mirror",
        type="customer.updated",
        payload={"data": {"object": {"id": "cus_hanging", "object": "customer"}}},
    )

    # when the mirror task runs for it
    started = time.monotonic()
    run = mirror.stripe_event_mirror(event_id=event.pk)
    elapsed = time.monotonic() - started

    # then it records the timeout instead of waiting the library's default 80 s per attempt
    [(kind, object_id, why)] = run.failed
    assert (kind, object_id) == ("customer", "cus_hanging")
    assert "APIConnectionError" in why
    assert elapsed < stripe_api.worst_wait_seconds() + 5
