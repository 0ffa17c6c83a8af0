"""Fixtures of the simulator's tests: a simulator whose webhooks go to a local receiver, and
the ``stripe`` library pointed at it."""

from __future__ import annotations

import threading

import pytest
import stripe

from stripe_simulator import start_simulator
from tests.stripe_simulator.support import WEBHOOK_SECRET, Receiver


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sim(receiver, monkeypatch):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/stripe"
    handle = start_simulator(port=0, webhook_url=url, webhook_secret=WEBHOOK_SECRET)
    monkeypatch.setattr(stripe, "api_key", "sk_test_simulator")
    monkeypatch.setattr(stripe, "api_base", handle.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield handle
    handle.stop()
