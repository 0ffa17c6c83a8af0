"""Helpers for tests that need a customer who paid through the Stripe simulator."""

import time

from tests.conftest import customer_client

DAY = 86400


def checkout(client, customer_id: str, plan: str = "professional") -> dict:
    response = client.post(
        "/api/subscriptions/checkout", {"customer_id": customer_id, "plan": plan}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def paid_customer(signup, stripe_sim, plan: str = "professional", days_ago: float = 0.0):
    """(signup body, customer client) of a customer who paid for `plan`, whose period
    started `days_ago` days ago on the simulator's clock."""
    stripe_sim.freeze_clock(int(time.time() - days_ago * DAY))
    body = signup()
    client = customer_client(body["api_key"])
    session = checkout(client, body["customer"]["customer_id"], plan)
    stripe_sim.complete_checkout(session["session_id"], "4242 4242 4242 4242")
    stripe_sim.wait_for_deliveries()
    return body, client
