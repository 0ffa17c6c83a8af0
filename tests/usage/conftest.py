"""Fixtures of the usage tests; their helpers are in tests/usage/helpers.py."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.usage.helpers import Instance


@pytest.fixture(autouse=True)
def _usage_rate_high(settings):
    """Tests post many reports; the throttle test lowers this again."""
    settings.RATE_LIMIT_USAGE = "100000/h"


@pytest.fixture
def instance(db) -> Instance:
    return Instance()


@pytest.fixture
def make_instance(db):
    return Instance


@pytest.fixture
def frozen(monkeypatch):
    """Set the clock the selectors read (timezone.now): `frozen(at)`."""

    def freeze(at) -> None:
        monkeypatch.setattr(timezone, "now", lambda: at)

    return freeze
