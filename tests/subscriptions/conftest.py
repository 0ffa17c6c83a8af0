"""A local Stripe (the simulator) over real HTTP, with webhooks into a live app server."""

import io

import pytest
import stripe
from django.core.management import call_command

from subscriptions.stripe_simulator import start_simulator

WEBHOOK_SECRET = "whsec_test_flows"


@pytest.fixture
def stripe_sim(live_server, settings):
    """The app talks to the simulator; the simulator signs webhooks to the live server."""
    handle = start_simulator(
        port=0,
        webhook_url=f"{live_server.url}/api/webhooks/stripe",
        webhook_secret=WEBHOOK_SECRET,
    )
    settings.STRIPE_SECRET_KEY = "sk_test_flows"
    settings.STRIPE_API_BASE = handle.base_url
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    stripe.max_network_retries = 0
    call_command("stripe_setup", stdout=io.StringIO())
    yield handle
    handle.stop()
