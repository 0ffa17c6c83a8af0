"""Overage pushed to Stripe Billing Meters over HTTP (the simulator): once per amount,
with stable identifiers, through crashes and rate limits."""

import calendar
import io
from datetime import UTC, datetime, timedelta

from django.core.management import call_command

from customers.models import Customer
from subscriptions import stripe_api
from subscriptions.models import Subscription
from tests.helpers import DAY, SignedUpCustomer, paid_customer
from tests.usage.helpers import now_s, report_body
from usage import services, tasks
from usage.models import UsageBillingRecord

METERED_KEYS = {stripe_api.overage_lookup_key(m) for m in stripe_api.OVERAGE_METERS}
GB = 10**9

# Starter includes 10 GB of traffic, 100,000 API calls and 10 devices. The report below
# uses 12 GB MQTT + 3 GB HTTP: 5 GB over, split 4 GB MQTT ($0.10) and 1 GB HTTP ($0.15);
# 250,000 calls: 150 thousand over at $0.50; 13 devices: 3 extra at $2.
FIRST_USAGE = {
    "mqtt_bytes_sent": 12 * GB,
    "http_bytes_sent": 3 * GB,
    "http_requests": 250_000,
    "active_devices": 13,
    "total_devices": 13,
}
FIRST_CENTS = {"mqtt_gb": 40, "http_gb": 15, "api_calls_thousands": 7500, "extra_devices": 600}
# Cumulative counters later: 18 GB MQTT + 6 GB HTTP = 24 GB, 14 over: 10.5 MQTT ($1.05),
# 3.5 HTTP ($0.525 → 53 cents); 300,000 calls: 200 thousand over ($100).
SECOND_USAGE = {**FIRST_USAGE, "mqtt_bytes_sent": 18 * GB, "http_bytes_sent": 6 * GB}
SECOND_USAGE["http_requests"] = 300_000
SECOND_CENTS = {"mqtt_gb": 105, "http_gb": 53, "api_calls_thousands": 10000, "extra_devices": 600}


def _period_that_ended_recently() -> tuple[float, int, int]:
    """(days ago to start a monthly period that ended 12 hours to 4 days ago, its length in
    days, the hours since it ended), the most recent such. Stripe bills calendar months (28 to
    31 days) from the start's day of month, so no period ends on some days (none on a 31st
    after a 30-day month, none on 29 to 31 March in a common year): it depends on the date."""
    now = datetime.now(tz=UTC)
    for hours in range(12, 4 * 24 + 1):
        for length in (28, 29, 30, 31):
            start = now - timedelta(days=length, hours=hours)
            year, month0 = divmod(start.month, 12)  # the next month, 0-based
            day = min(start.day, calendar.monthrange(start.year + year, month0 + 1)[1])
            end = start.replace(year=start.year + year, month=month0 + 1, day=day)
            if (end - start).days == length:
                return length + hours / 24, length, hours
    raise AssertionError(f"no monthly period ended 12 h to 4 days before {now}")


def _report(customer: SignedUpCustomer, at: datetime, **usage) -> None:
    response = customer.client.post(
        "/api/usage/report", report_body(customer.id, at=at, **usage), format="json"
    )
    assert response.status_code == 201, response.content


def _stripe_customer(customer: SignedUpCustomer) -> str:
    return Customer.objects.get(customer_id=customer.id).stripe_customer_id


def _totals(stripe_sim, stripe_customer: str, start=None, end=None) -> dict[str, float]:
    return {
        meter: stripe_sim.meter_total(
            stripe_customer, stripe_api.meter_event_name(meter), start, end
        )
        for meter in stripe_api.OVERAGE_METERS
    }


def _expected(cents: dict[str, int]) -> dict[str, float]:
    return {meter: float(cents.get(meter, 0)) for meter in stripe_api.OVERAGE_METERS}


def _cents(cents: dict[str, int]) -> dict[str, int]:
    return {meter: cents.get(meter, 0) for meter in stripe_api.OVERAGE_METERS}


def _events(stripe_sim) -> list[dict]:
    with stripe_sim.state.lock:
        return [dict(e) for e in stripe_sim.state.meter_events]


def _events_between(stripe_sim, start: int, end: int) -> list[dict]:
    """The meter events dated in [start, end)."""
    return [e for e in _events(stripe_sim) if start <= e["timestamp"] < end]


def test_stripe_setup_creates_meters_and_metered_prices_once(stripe_sim):
    # given stripe_setup already ran once (the fixture)
    meters = stripe_sim.state.all("billing.meter")
    prices = [p for p in stripe_sim.state.all("price") if p["lookup_key"] in METERED_KEYS]
    assert sorted(m["event_name"] for m in meters) == sorted(
        f"iotistic_{m}" for m in UsageBillingRecord.Meter.values
    )
    assert all(m["default_aggregation"]["formula"] == "sum" for m in meters)
    assert len(prices) == 5
    by_meter = {m["id"]: m["event_name"] for m in meters}
    for price in prices:
        assert price["unit_amount"] == 1
        assert price["currency"] == "usd"
        assert price["recurring"]["usage_type"] == "metered"
        meter = price["lookup_key"].removeprefix("iotistic_overage_")
        assert by_meter[price["recurring"]["meter"]] == f"iotistic_{meter}"

    # when it runs again
    out = io.StringIO()
    call_command("stripe_setup", stdout=out)

    # then nothing new was created
    assert "created" not in out.getvalue()
    assert out.getvalue().count("exists  meter mtr_") == 5
    assert len(stripe_sim.state.all("billing.meter")) == 5
    assert len(stripe_sim.state.all("price")) == 8


def test_checkout_subscription_has_a_plan_item_and_one_item_per_meter(signup, stripe_sim):
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=1)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    items = stripe_sim.get(subscription.stripe_subscription_id)["items"]["data"]
    assert sorted(item["price"]["lookup_key"] for item in items) == sorted(
        {"iotistic_starter_monthly", *METERED_KEYS}
    )
    assert [i["quantity"] for i in items if i["price"]["lookup_key"] in METERED_KEYS] == [None] * 5
    assert (subscription.plan, subscription.status) == ("starter", "active")
    assert subscription.stripe_price_id == next(
        i["price"]["id"] for i in items if i["price"]["lookup_key"] == "iotistic_starter_monthly"
    )


def test_push_sends_overage_once_and_then_only_the_difference(signup, stripe_sim):
    # given a starter customer over its allowances
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=1)
    stripe_customer = _stripe_customer(customer)
    _report(customer, now_s() - timedelta(minutes=3), **FIRST_USAGE)

    # when the push task runs
    result = tasks.usage_billing_push_task.delay().get()

    # then Stripe's meters hold the overage in cents, one event per meter owed
    assert result["sent"] == 4
    assert _totals(stripe_sim, stripe_customer) == _expected(FIRST_CENTS)
    events = _events(stripe_sim)
    assert sorted(e["identifier"] for e in events) == sorted(
        UsageBillingRecord.objects.filter(customer__customer_id=customer.id)
        .exclude(identifier="")
        .values_list("identifier", flat=True)
    )
    assert all(e["identifier"].endswith("-1") for e in events)

    # when it runs again: nothing new is sent
    again = tasks.usage_billing_push_task.delay().get()
    assert (again["sent"], again["duplicates"]) == (0, 0), (
        _events(stripe_sim),
        list(UsageBillingRecord.objects.values()),
    )
    assert len(_events(stripe_sim)) == 4

    # when more usage arrives, only the difference goes, under new identifiers
    _report(customer, now_s() - timedelta(minutes=1), **SECOND_USAGE)
    tasks.usage_billing_push_task.delay().get()
    assert _totals(stripe_sim, stripe_customer) == _expected(SECOND_CENTS)
    new = _events(stripe_sim)[4:]
    assert sorted(e["identifier"].rsplit("-", 1)[1] for e in new) == ["2", "2", "2"]
    assert tasks.usage_billing_push_task.delay().get()["sent"] == 0


def test_push_lost_reply_is_resent_with_the_same_identifier_and_counted_once(signup, stripe_sim):
    # given Stripe accepts the first meter event but its reply is lost (a crash after Stripe
    # accepted it and before we confirmed looks the same to us)
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=1)
    _report(customer, now_s() - timedelta(minutes=3), **FIRST_USAGE)
    stripe_sim.fail_next("/v1/billing/meter_events", status=500, after=True)

    # when the push runs: it stops, with the event in flight
    first = tasks.usage_billing_push_task.delay().get()
    assert first["sent"] == 0
    (in_flight,) = UsageBillingRecord.objects.filter(status="in_flight")
    assert len(_events(stripe_sim)) == 1
    assert _events(stripe_sim)[0]["identifier"] == in_flight.identifier

    # when the next run resends it: Stripe answers duplicate, the record is confirmed
    second = tasks.usage_billing_push_task.delay().get()
    assert (second["duplicates"], second["sent"]) == (1, 3)
    in_flight.refresh_from_db()
    assert (in_flight.status, in_flight.push_count) == ("pushed", 1)
    assert _totals(stripe_sim, _stripe_customer(customer)) == _expected(FIRST_CENTS)
    assert len(_events(stripe_sim)) == 4
    assert tasks.usage_billing_push_task.delay().get()["sent"] == 0


def test_push_backs_off_on_429_and_counts_nothing_twice(signup, stripe_sim, monkeypatch):
    monkeypatch.setattr(services, "BACKOFF_BASE_SECONDS", 0.01)
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=1)
    _report(customer, now_s() - timedelta(minutes=3), **FIRST_USAGE)
    rate_limited = {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}
    stripe_sim.fail_next("/v1/billing/meter_events", rate_limited, status=429, retryable=True)
    stripe_sim.fail_next("/v1/billing/meter_events", rate_limited, status=429, after=True)

    result = tasks.usage_billing_push_task.delay().get()

    assert (result["sent"], result["duplicates"]) == (3, 1)
    assert _totals(stripe_sim, _stripe_customer(customer)) == _expected(FIRST_CENTS)
    assert len(_events(stripe_sim)) == 4
    assert UsageBillingRecord.objects.exclude(status="pushed").exclude(amount_cents=0).count() == 0


def test_push_stops_when_rate_limited_for_good_and_the_next_run_resumes(
    signup, stripe_sim, monkeypatch
):
    monkeypatch.setattr(services, "BACKOFF_BASE_SECONDS", 0.001)
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=1)
    _report(customer, now_s() - timedelta(minutes=3), **FIRST_USAGE)
    stripe_sim.fail_next("/v1/billing/meter_events", status=429, times=100)

    assert tasks.usage_billing_push_task.delay().get()["sent"] == 0
    assert len(_events(stripe_sim)) == 0
    stripe_sim.state.failures.clear()

    assert tasks.usage_billing_push_task.delay().get()["sent"] == 4
    assert _totals(stripe_sim, _stripe_customer(customer)) == _expected(FIRST_CENTS)


def test_period_rollover_pushes_late_overage_into_the_ended_period_and_bills_it(
    signup, stripe_sim, settings
):
    # given a starter period that ended 12 hours to 4 days ago (Stripe has not renewed it yet),
    # and Stripe's invoice finalization grace period set to a day more than that
    days_ago, length, hours = _period_that_ended_recently()
    settings.STRIPE_INVOICE_GRACE_SECONDS = DAY + hours * 3600
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=days_ago)
    stripe_customer = _stripe_customer(customer)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    old_start, old_end = subscription.current_period_start, subscription.current_period_end
    assert old_end < datetime.now(tz=UTC)
    # (a period is metered in whole UTC days: its last, partial day counts in the next one)
    _report(customer, old_end - timedelta(days=1, hours=1), **FIRST_USAGE)

    # when the push runs: the events are dated inside the ended period
    assert tasks.usage_billing_push_task.delay().get()["sent"] == 4
    start, end = int(old_start.timestamp()), int(old_end.timestamp())
    assert _totals(stripe_sim, stripe_customer, start, end) == _expected(FIRST_CENTS)

    # when Stripe renews: the cycle invoice bills the overage, 1 cent per unit
    stripe_sim.advance_clock(length * DAY)  # to its end
    stripe_sim.wait_for_deliveries()
    subscription.refresh_from_db()
    assert subscription.current_period_start == old_end
    invoice = stripe_sim.get(stripe_sim.get(subscription.stripe_subscription_id)["latest_invoice"])
    # (a line names its price as `pricing.price_details.price`, an id, since API 2025-03-31)
    lookup_key = {price["id"]: price["lookup_key"] for price in stripe_sim.state.all("price")}
    keys = [
        lookup_key[line["pricing"]["price_details"]["price"]] for line in invoice["lines"]["data"]
    ]
    metered = {
        key: line["amount"]
        for key, line in zip(keys, invoice["lines"]["data"], strict=True)
        if key in METERED_KEYS
    }
    assert metered == {
        stripe_api.overage_lookup_key(meter): cents
        for meter, cents in _expected(FIRST_CENTS).items()
    }
    assert invoice["amount_due"] == 2900 + sum(FIRST_CENTS.values())

    # then, in the new period, the ended period is recomputed against its plan and nothing
    # of it is sent again (the new period may bill devices still active since it began)
    again = tasks.usage_billing_push_task.delay().get()
    assert again["duplicates"] == 0
    assert _totals(stripe_sim, stripe_customer, start, end) == _expected(FIRST_CENTS)
    assert len(_events_between(stripe_sim, start, end)) == 4
    periods = set(
        UsageBillingRecord.objects.filter(customer__customer_id=customer.id).values_list(
            "period_start", "plan"
        )
    )
    assert periods == {(old_start, "starter"), (old_end, "starter")}


def test_late_report_of_an_ended_period_is_pushed_after_rollover(signup, stripe_sim):
    # given a period that ended and was renewed, with its overage pushed
    days_ago, length, _ = _period_that_ended_recently()
    customer = paid_customer(signup, stripe_sim, "starter", days_ago=days_ago)
    stripe_customer = _stripe_customer(customer)
    subscription = Subscription.objects.get(customer__customer_id=customer.id)
    old_start, old_end = subscription.current_period_start, subscription.current_period_end
    _report(customer, old_end - timedelta(days=1, hours=2), **FIRST_USAGE)
    tasks.usage_billing_push_task.delay().get()
    stripe_sim.advance_clock(length * DAY)  # to its end
    stripe_sim.wait_for_deliveries()

    # when a report of the ended period arrives late and the push runs in the new period
    _report(customer, old_end - timedelta(days=1, hours=1), **SECOND_USAGE)
    tasks.usage_billing_push_task.delay().get()

    # then the difference is pushed once, on the ended period's records, and Stripe's totals
    # are what the records say was pushed (the new period may bill devices still active)
    records = UsageBillingRecord.objects.filter(customer__customer_id=customer.id)
    ended = records.filter(period_start=old_start)
    assert {r.meter: r.amount_cents_pushed for r in ended} == _cents(SECOND_CENTS)
    assert ended.filter(push_count=2).count() == 3
    later = _cents({})
    for record in records.exclude(period_start=old_start):
        later[record.meter] += record.amount_cents_pushed
    assert _totals(stripe_sim, stripe_customer) == {
        meter: float(cents + later[meter]) for meter, cents in _cents(SECOND_CENTS).items()
    }
    assert set(records.filter(push_count=2).values_list("period_start", flat=True)) == {old_start}
    assert tasks.usage_billing_push_task.delay().get()["sent"] == 0
