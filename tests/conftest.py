"""Shared fixtures. Tests run on DATABASE_URL / REDIS_URL when set (PostgreSQL and Redis in CI)."""

from __future__ import annotations

import copy
import io
import itertools
import os

import pytest
import stripe
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from licensing import signing
from stripe_simulator import start_simulator

# The helper modules assert (a signup answered 201, ...): let pytest rewrite them, as it does
# conftest files, so their failures show the compared values. Before they are imported.
pytest.register_assert_rewrite("tests.helpers", "tests.usage.helpers")

from tests.helpers import (  # noqa: E402
    ADMIN_TOKEN,
    MIRROR_KEY,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    SignedUpCustomer,
    signup_customer,
    staff_api_client,
)


@pytest.fixture(scope="session")
def license_key_paths(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    private, public = directory / "private-key.pem", directory / "public-key.pem"
    signing.write_key_pair(private, public)
    return private, public


@pytest.fixture(autouse=True)
def _tasks_in_process():
    """Tasks run where they are enqueued, even with Redis configured: tests of the broker
    path (tests/deployments) switch this off and run a real worker."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _isolated_settings(settings, license_key_paths, tmp_path):
    """Each test: its own copy of the license keys, a known admin token, an empty cache."""
    private, public = license_key_paths
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    (key_dir / private.name).write_bytes(private.read_bytes())
    (key_dir / private.name).chmod(0o600)
    (key_dir / public.name).write_bytes(public.read_bytes())
    settings.LICENSE_PRIVATE_KEY_PATH = key_dir / private.name
    settings.LICENSE_PUBLIC_KEY_PATH = key_dir / public.name
    settings.ADMIN_API_TOKEN = ADMIN_TOKEN
    # No Stripe unless a test starts the simulator (tests/subscriptions/conftest.py).
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_API_BASE = ""
    caches = copy.deepcopy(settings.CACHES)
    # Test keys apart from a dev server's on the same Redis, so clearing them is safe.
    caches["default"]["KEY_PREFIX"] = f"billing-test-{os.getpid()}"
    settings.CACHES = caches
    _clear_cache()
    yield
    _clear_cache()


@pytest.fixture
def shared_cache(settings):
    """The cache on Redis (REDIS_URL, else the machine's) even where the run has none: what
    the service shares between processes (rate limits, the data version of held keys)."""
    location = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": location,
            "KEY_PREFIX": f"billing-test-{os.getpid()}-shared",
        }
    }
    _clear_cache()
    yield cache
    _clear_cache()


def _clear_cache() -> None:
    """Delete only this run's keys: `cache.clear()` on Redis would flush the whole database."""
    backend = getattr(cache, "_cache", None)
    if hasattr(backend, "get_client"):
        client = backend.get_client(write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client() -> APIClient:
    return staff_api_client()


@pytest.fixture
def signup(api_client, db):
    """Sign customers up through the public API: `signup(**fields)` returns a
    `SignedUpCustomer` (customer n of the test is owner<n>@example.com unless told otherwise)."""
    numbers = itertools.count(1)

    def _signup(**fields) -> SignedUpCustomer:
        return signup_customer(api_client, next(numbers), **fields)

    return _signup


@pytest.fixture
def signup_committed(signup, django_capture_on_commit_callbacks):
    """`signup`, with its transaction's commit hooks run: the data version settles, as after
    a real signup (inside a test's transaction a write leaves it pending)."""

    def _signup(**fields):
        with django_capture_on_commit_callbacks(execute=True):
            return signup(**fields)

    return _signup


@pytest.fixture
def stripe_sim(live_server, settings):
    """A local Stripe (the simulator) over real HTTP: the app calls it with the `stripe`
    library, and it sends signed webhooks to the live app server."""
    handle = start_simulator(
        port=0,
        webhook_url=f"{live_server.url}{WEBHOOK_PATH}",
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


@pytest.fixture
def mirrored_sim(stripe_sim, settings, monkeypatch):
    """The simulator, with a key dj-stripe accepts and the library's global client (what
    dj-stripe uses; STRIPE_API_HOST sets it at start-up) pointed at it."""
    settings.STRIPE_SECRET_KEY = MIRROR_KEY
    monkeypatch.setattr(stripe, "api_base", stripe_sim.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "default_http_client", None)  # the mirror sets its own
    return stripe_sim
