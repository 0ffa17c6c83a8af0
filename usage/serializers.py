"""Input validation and output shapes of the usage endpoints (the guide's field names)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import StrictSerializer
from core.timestamps import iso
from usage import metering
from usage.models import COUNTER_FIELDS, UsageReport
from usage.services import MAX_CLOCK_SKEW, MAX_REPORT_AGE

MAX_COUNTER = 10**15  # 1 PB or 10^15 messages since an instance started
MAX_DEVICES = 1_000_000
MAX_ROWS = 10**12
MAX_SIZE_MB = Decimal(10_000_000)  # 10 TB
MAX_BATCH_REPORTS = 500
# Body limits: one report is well under 2 kB; a full batch under 512 kB.
MAX_REPORT_BYTES = 16 * 1024
MAX_BATCH_BYTES = 1024 * 1024


class JsonIntegerField(serializers.IntegerField):
    """A JSON integer: no strings, floats or booleans (`"5"`, `5.0`, `true` are refused)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonStringMixin:
    """A JSON string only: DRF's CharField would turn the number 12 into "12"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonCharField(JsonStringMixin, serializers.CharField):
    pass


class JsonRegexField(JsonStringMixin, serializers.RegexField):
    pass


@extend_schema_field(OpenApiTypes.NUMBER)
class JsonNumberField(serializers.Field):
    """A JSON number (integer or decimal), kept as Decimal to three places."""

    default_error_messages = {
        "invalid": "A number is required.",
        "min_value": "Ensure this value is greater than or equal to {min_value}.",
        "max_value": "Ensure this value is less than or equal to {max_value}.",
    }

    def __init__(self, *, min_value: Decimal, max_value: Decimal, places: int = 3, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        self.step = Decimal(1).scaleb(-places)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        value = Decimal(str(data)).quantize(self.step, ROUND_HALF_UP)
        if value < self.min_value:
            self.fail("min_value", min_value=self.min_value)
        if value > self.max_value:
            self.fail("max_value", max_value=self.max_value)
        return value

    def to_representation(self, value):
        return float(value)


def _counter(**kwargs) -> JsonIntegerField:
    """A cumulative counter; optional (absent: not measured by this instance)."""
    return JsonIntegerField(min_value=0, max_value=MAX_COUNTER, required=False, **kwargs)


class ReportInput(StrictSerializer):
    """The guide's body, plus `report_id`, `reported_at` and `started_at` (optional).

    Only `customer_id`, `instance_id` and the two device counts are required: every traffic
    counter and storage gauge may be left out by an instance that does not measure it.
    """

    customer_id = JsonCharField(max_length=40)
    instance_id = JsonRegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        max_length=100,
        error_messages={
            "invalid": "A string of letters, digits and . _ : - only, starting alphanumeric."
        },
    )
    report_id = serializers.UUIDField(
        required=False, help_text="Made once per report, reused on every retry of it."
    )
    reported_at = serializers.DateTimeField(
        required=False, help_text="When the snapshot was taken (UTC if no offset); default now."
    )
    started_at = serializers.DateTimeField(
        required=False, help_text="When the instance's counters started (process start)."
    )
    active_devices = JsonIntegerField(min_value=0, max_value=MAX_DEVICES)
    total_devices = JsonIntegerField(min_value=0, max_value=MAX_DEVICES)
    mqtt_messages_published = _counter()
    mqtt_messages_received = _counter()
    mqtt_bytes_sent = _counter()
    mqtt_bytes_received = _counter()
    http_requests = _counter()
    http_bytes_sent = _counter()
    http_bytes_received = _counter()
    # Storage gauges are optional too: absent, the instance holds no storage until its next
    # report that has them.
    postgres_size_mb = JsonNumberField(min_value=Decimal(0), max_value=MAX_SIZE_MB, required=False)
    postgres_row_count = JsonIntegerField(min_value=0, max_value=MAX_ROWS, required=False)

    def validate_reported_at(self, value):
        now = timezone.now()
        if value > now + MAX_CLOCK_SKEW:
            raise serializers.ValidationError("Must not be in the future (5 minutes allowed).")
        if value < now - MAX_REPORT_AGE:
            raise serializers.ValidationError(
                f"Older than {MAX_REPORT_AGE.days} days; such a report is no longer accepted."
            )
        return value

    def validate_started_at(self, value):
        if value > timezone.now() + MAX_CLOCK_SKEW:
            raise serializers.ValidationError("Must not be in the future (5 minutes allowed).")
        return value


class BatchReportInput(ReportInput):
    """In a batch every report carries the time it was taken."""

    reported_at = serializers.DateTimeField(help_text="When the snapshot was taken.")


class BatchInput(StrictSerializer):
    reports = BatchReportInput(many=True, allow_empty=False, max_length=MAX_BATCH_REPORTS)


class HistoryQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=30)


def report_outcome_out(outcome) -> dict:
    return {
        "instance_id": outcome.instance_id,
        "reported_at": iso(outcome.reported_at),
        "report_id": str(outcome.report_id) if outcome.report_id else None,
        "duplicate": outcome.duplicate,
    }


def report_out(report: UsageReport) -> dict:
    return {
        "instance_id": report.instance_id,
        "report_id": str(report.report_id) if report.report_id else None,
        "reported_at": iso(report.reported_at),
        "received_at": iso(report.received_at),
        "started_at": iso(report.started_at),
        "active_devices": report.active_devices,
        "total_devices": report.total_devices,
        **{name: getattr(report, name) for name in COUNTER_FIELDS},
        "postgres_size_mb": None
        if report.postgres_size_mb is None
        else float(report.postgres_size_mb),
        "postgres_row_count": report.postgres_row_count,
    }


def instance_out(instance) -> dict:
    return {
        "instance_id": instance.instance_id,
        "reports": instance.reports,
        "last_reported_at": iso(instance.last_reported_at),
        "meters": list(instance.meters),
        "unmeasured": list(instance.unmeasured),
    }


def _gb(value: int) -> str:
    return str((Decimal(value) / metering.BYTES_PER_GB).quantize(metering.QUANTITY_STEP))


def totals_out(totals: metering.UsageTotals) -> dict:
    return {
        "reports": totals.report_count,
        **{name: getattr(totals, name) for name in COUNTER_FIELDS},
        "mqtt_gb": _gb(totals.mqtt_bytes),
        "http_gb": _gb(totals.http_bytes),
        "api_calls": totals.api_calls,
        "device_hours": str(totals.device_hours),
        "peak_active_devices": totals.peak_active_devices,
        "peak_total_devices": totals.peak_total_devices,
        "peak_storage_mb": str(totals.peak_storage_mb),
    }


def consumption_out(consumption: metering.Consumption) -> dict:
    period = consumption.period
    usage = consumption.usage
    return {
        "customer_id": consumption.customer_id,
        "plan": consumption.plan.name,
        "subscription_status": consumption.subscription_status,
        "billable": consumption.billable,
        "period": {
            "start": iso(period.start),
            "end": iso(period.end),
            "source": period.source,
            "metered_days": {
                "from": period.first_day.isoformat(),
                "until": period.end_day.isoformat(),
            },
        },
        "usage": {
            **totals_out(usage),
            "storage_gb_months": str(
                usage.storage_gb_months(period.seconds).quantize(metering.QUANTITY_STEP)
            ),
        },
        "max_devices": consumption.max_devices,
        "over_device_limit": consumption.over_device_limit,
        "overage": {meter: line.as_dict() for meter, line in consumption.lines.items()},
        "total_overage_cents": consumption.total_cents,
    }
