"""`manage.py stripe_setup`: the catalogue made once in Stripe (here the simulator), and
`--wait` for a Stripe that is still starting, as under `make run`."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import CommandError, call_command

from subscriptions import stripe_api


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("stripe_setup", *args, stdout=out)
    return out.getvalue()


def test_stripe_setup_is_idempotent(stripe_sim):
    # given the catalogue the fixture already made, when it runs again
    output = _run("--wait", "5")

    # then it finds every price and meter and creates nothing
    assert "created" not in output
    assert output.count("exists ") == 3 + 2 * len(stripe_api.OVERAGE_METERS)


def test_stripe_setup_waits_then_reports_a_stripe_that_never_answers(settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.STRIPE_SECRET_KEY = "sk_test_nowhere"
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    with pytest.raises(CommandError, match="Stripe does not answer"):
        _run("--wait", "0.5")


def test_stripe_setup_needs_a_key(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY is not set"):
        _run()
