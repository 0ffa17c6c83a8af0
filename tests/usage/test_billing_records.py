"""UsageBillingRecord: the bookkeeping that lets a metered push send each overage once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError

from core.plans import PLANS
from tests.factories import CustomerFactory
from usage import metering, services
from usage.models import UsageBillingRecord

pytestmark = pytest.mark.django_db

PERIOD = metering.BillingPeriod(
    start=datetime(2026, 3, 5, 14, 30, tzinfo=UTC),
    end=datetime(2026, 4, 5, 14, 30, tzinfo=UTC),
    source="subscription",
)


def lines(api_calls: int):
    usage = metering.UsageTotals(http_requests=api_calls)
    return metering.period_overage(
        usage=usage, plan=PLANS["starter"], period_seconds=PERIOD.seconds
    )


def test_sync_records_every_meter_once_per_period():
    customer = CustomerFactory()
    services.usage_billing_records_sync(customer=customer, period=PERIOD, lines=lines(150_000))
    records = services.usage_billing_records_sync(
        customer=customer, period=PERIOD, lines=lines(160_000)
    )
    assert UsageBillingRecord.objects.count() == 5
    api = next(r for r in records if r.meter == "api_calls_thousands")
    # 160,000 - 100,000 = 60 thousand * $0.50 = $30.00
    assert (api.quantity, api.amount_cents) == (Decimal("60"), 3000)
    with pytest.raises(IntegrityError):
        UsageBillingRecord.objects.create(
            customer=customer, period_start=PERIOD.start, period_end=PERIOD.end, meter="mqtt_gb"
        )


def test_push_crash_retry_sends_the_same_event_and_confirms_once():
    customer = CustomerFactory()
    records = services.usage_billing_records_sync(
        customer=customer, period=PERIOD, lines=lines(150_000)
    )
    api = next(r for r in records if r.meter == "api_calls_thousands")
    # nothing owed on the other meters
    assert [services.usage_billing_push_begin(record=r) for r in records if r != api] == [None] * 4
    intent = services.usage_billing_push_begin(record=api)
    assert intent.identifier == (
        f"usage-{customer.customer_id}-20260305T143000-api_calls_thousands-1"
    )
    assert (intent.quantity, intent.amount_cents) == (Decimal(50), 2500)
    # the worker dies after calling Stripe: the retry gets the very same event back
    retry = services.usage_billing_push_begin(record=api)
    assert (retry.identifier, retry.quantity, retry.amount_cents) == (
        intent.identifier,
        intent.quantity,
        intent.amount_cents,
    )
    assert services.usage_billing_push_confirm(record=api, identifier=intent.identifier) is True
    assert services.usage_billing_push_confirm(record=api, identifier=intent.identifier) is False
    assert services.usage_billing_push_begin(record=api) is None
    api.refresh_from_db()
    assert (api.status, api.quantity_pushed, api.amount_cents_pushed) == ("pushed", 50, 2500)


def test_push_after_more_usage_sends_only_the_difference_under_a_new_identifier():
    customer = CustomerFactory()
    (api,) = [
        r
        for r in services.usage_billing_records_sync(
            customer=customer, period=PERIOD, lines=lines(150_000)
        )
        if r.meter == "api_calls_thousands"
    ]
    first = services.usage_billing_push_begin(record=api)
    services.usage_billing_push_confirm(record=api, identifier=first.identifier)
    # late reports raise the period's API calls to 170,000: 70 thousand owed, 50 pushed
    services.usage_billing_records_sync(customer=customer, period=PERIOD, lines=lines(170_000))
    second = services.usage_billing_push_begin(record=api)
    assert second.identifier.endswith("-api_calls_thousands-2")
    assert (second.quantity, second.amount_cents) == (Decimal(20), 1000)
