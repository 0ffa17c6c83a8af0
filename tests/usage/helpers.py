"""Helpers of the usage tests: a customer instance that reports, and report bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from customers.credentials import api_key_issue
from customers.models import Customer
from tests.factories import CustomerFactory, SubscriptionFactory
from tests.helpers import customer_client

COUNTERS = {
    "mqtt_messages_published": 0,
    "mqtt_messages_received": 0,
    "mqtt_bytes_sent": 0,
    "mqtt_bytes_received": 0,
    "http_requests": 0,
    "http_bytes_sent": 0,
    "http_bytes_received": 0,
}


def now_s() -> datetime:
    """Now in UTC to the second, as reports are stored."""
    return datetime.now(tz=UTC).replace(microsecond=0)


def report_body(customer_id: str, *, at: datetime | None = None, **overrides) -> dict:
    """A valid report: the guide's fields plus a fresh report_id and a reported_at."""
    body = {
        "customer_id": customer_id,
        "instance_id": "prod-1",
        "report_id": str(uuid.uuid4()),
        "reported_at": (at or now_s() - timedelta(minutes=1)).isoformat(),
        "active_devices": 0,
        "total_devices": 0,
        **COUNTERS,
        "postgres_size_mb": 0,
        "postgres_row_count": 0,
    }
    body.update(overrides)
    return body


class Instance:
    """A customer (on a trial of starter, as after signup) and a client holding its API key."""

    def __init__(self, *, plan: str = "starter", status: str = "trialing") -> None:
        customer = CustomerFactory()
        SubscriptionFactory(customer=customer, plan=plan, status=status)
        self.customer_id = customer.customer_id
        self.client = customer_client(api_key_issue(customer=customer).raw_key)

    @property
    def customer(self) -> Customer:
        return Customer.objects.select_related("subscription").get(customer_id=self.customer_id)

    def report(self, **fields):
        return self.client.post(
            "/api/usage/report", report_body(self.customer_id, **fields), format="json"
        )

    def batch(self, reports: list[dict]):
        return self.client.post("/api/usage/report/batch", {"reports": reports}, format="json")

    def history(self, days: int = 2, **params) -> dict:
        response = self.client.get(f"/api/usage/{self.customer_id}", {"days": days, **params})
        assert response.status_code == 200, response.content
        return response.json()

    def consumption(self) -> dict:
        response = self.client.get(f"/api/usage/{self.customer_id}/consumption")
        assert response.status_code == 200, response.content
        return response.json()
