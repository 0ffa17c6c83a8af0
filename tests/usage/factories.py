"""Usage rows written straight to the database (e.g. reports too old for the API)."""

from datetime import UTC, datetime

import factory

from tests.factories import CustomerFactory
from usage.models import UsageReport


class UsageReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageReport

    customer = factory.SubFactory(CustomerFactory)
    instance_id = "prod-1"
    reported_at = factory.LazyFunction(lambda: datetime.now(tz=UTC).replace(microsecond=0))
    received_at = factory.SelfAttribute("reported_at")
    active_devices = 0
    total_devices = 0
    mqtt_messages_published = 0
    mqtt_messages_received = 0
    mqtt_bytes_sent = 0
    mqtt_bytes_received = 0
    http_requests = 0
    http_bytes_sent = 0
    http_bytes_received = 0
    postgres_size_mb = 0
    postgres_row_count = 0
