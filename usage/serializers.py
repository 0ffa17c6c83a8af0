"""Input validation and output shapes of the usage endpoints (the guide's field names)."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import msgspec
from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from config.api import StrictSerializer
from core.timestamps import iso
from customers.serializers import PaginationOut
from usage import metering
from usage.models import COUNTER_FIELDS, METER_FIELDS, UsageReport
from usage.services import MAX_CLOCK_SKEW, MAX_REPORT_AGE

MAX_COUNTER = 10**15  # 1 PB or 10^15 messages since an instance started
MAX_DEVICES = 1_000_000
MAX_ROWS = 10**12
MAX_SIZE_MB = Decimal(10_000_000)  # 10 TB
MAX_BATCH_REPORTS = settings.USAGE_MAX_BATCH_REPORTS
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


HISTORY_MAX_DAYS = 366
HISTORY_DEFAULT_DAYS = 30


class HistoryQuery(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=HISTORY_MAX_DAYS, default=HISTORY_DEFAULT_DAYS
    )


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


# ---------------------------------------------------------------- response schemas
# What the endpoints answer, for the OpenAPI document (the functions above shape the answers;
# tests check every real answer against these, an undocumented field being an error).


def _decimal(help_text: str = "") -> serializers.DecimalField:
    """A decimal written as a JSON string (exact), e.g. `"1.250000"`."""
    return serializers.DecimalField(
        max_digits=None, decimal_places=None, coerce_to_string=True, help_text=help_text
    )


class ReportOutcomeOut(serializers.Serializer):
    instance_id = serializers.CharField()
    reported_at = serializers.DateTimeField()
    report_id = serializers.UUIDField(allow_null=True)
    duplicate = serializers.BooleanField(help_text="A repeat of a stored report: nothing changed.")


class ReportAcceptedOut(ReportOutcomeOut):
    accepted = serializers.BooleanField()


class BatchAcceptedOut(serializers.Serializer):
    accepted = serializers.BooleanField()
    received = serializers.IntegerField(min_value=0)
    inserted = serializers.IntegerField(min_value=0)
    duplicates = serializers.IntegerField(min_value=0)
    results = ReportOutcomeOut(many=True, help_text="One per report, in the batch's order.")


def _with_counters(fields: dict, *, after: str, nullable: bool) -> dict:
    """`fields` with one integer per counter (usage.models.COUNTER_FIELDS) after `after`:
    a field instance per name (DRF binds a field to the one name it is given)."""
    items = list(fields.items())
    at = [name for name, _ in items].index(after) + 1
    counters = [
        (name, serializers.IntegerField(min_value=0, allow_null=nullable))
        for name in COUNTER_FIELDS
    ]
    return dict([*items[:at], *counters, *items[at:]])


class UsageTotalsOut(serializers.Serializer):
    reports = serializers.IntegerField(min_value=0)
    mqtt_gb = _decimal("MQTT bytes sent and received, in GB (10^9 bytes).")
    http_gb = _decimal("HTTP bytes sent and received, in GB (10^9 bytes).")
    api_calls = serializers.IntegerField(min_value=0)
    device_hours = _decimal("Active devices integrated over time.")
    peak_active_devices = serializers.IntegerField(min_value=0)
    peak_total_devices = serializers.IntegerField(min_value=0)
    peak_storage_mb = _decimal()

    def get_fields(self):
        # each counter's deltas, summed
        return _with_counters(super().get_fields(), after="reports", nullable=False)


class UsageDayOut(UsageTotalsOut):
    def get_fields(self):
        return {"date": serializers.DateField(), **super().get_fields()}


class UsageInstanceOut(serializers.Serializer):
    instance_id = serializers.CharField()
    reports = serializers.IntegerField(min_value=0)
    last_reported_at = serializers.DateTimeField()
    meters = serializers.ListField(child=serializers.ChoiceField(choices=list(METER_FIELDS)))
    unmeasured = serializers.ListField(
        child=serializers.CharField(), help_text="Fields this instance never sent."
    )


class UsageReportOut(serializers.Serializer):
    instance_id = serializers.CharField()
    report_id = serializers.UUIDField(allow_null=True)
    reported_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    active_devices = serializers.IntegerField(min_value=0)
    total_devices = serializers.IntegerField(min_value=0)
    postgres_size_mb = serializers.FloatField(allow_null=True)
    postgres_row_count = serializers.IntegerField(min_value=0, allow_null=True)

    def get_fields(self):
        # as reported, null when the instance does not measure it
        return _with_counters(super().get_fields(), after="total_devices", nullable=True)


UsageHistoryOut = inline_serializer(
    "UsageHistory",
    {
        "customer_id": serializers.CharField(),
        "days": serializers.IntegerField(),
        "from": serializers.DateField(help_text="First UTC day of the window."),
        "to": serializers.DateField(help_text="Last UTC day of the window (today)."),
        "totals": UsageTotalsOut(),
        "daily": UsageDayOut(many=True),
        "instances": UsageInstanceOut(many=True),
        "reports": UsageReportOut(many=True, help_text="Raw reports, newest first, paged."),
        "pagination": PaginationOut(),
    },
)


class MeterLineOut(serializers.Serializer):
    unit = serializers.CharField()
    used = _decimal()
    allowance = serializers.DecimalField(
        max_digits=None,
        decimal_places=None,
        coerce_to_string=True,
        allow_null=True,
        help_text="null: unlimited.",
    )
    overage = _decimal()
    unit_price = _decimal("USD per unit.")
    amount_cents = serializers.IntegerField(min_value=0)


class ConsumptionUsageOut(UsageTotalsOut):
    storage_gb_months = _decimal()


UsageConsumptionOut = inline_serializer(
    "UsageConsumption",
    {
        "customer_id": serializers.CharField(),
        "plan": serializers.CharField(),
        "subscription_status": serializers.CharField(allow_null=True),
        "billable": serializers.BooleanField(),
        "period": inline_serializer(
            "UsagePeriod",
            {
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
                "source": serializers.ChoiceField(choices=["subscription", "calendar_month"]),
                "metered_days": inline_serializer(
                    "UsageMeteredDays",
                    {
                        "from": serializers.DateField(),
                        "until": serializers.DateField(help_text="Exclusive."),
                    },
                ),
            },
        ),
        "usage": ConsumptionUsageOut(),
        "max_devices": serializers.IntegerField(help_text="-1 means unlimited."),
        "over_device_limit": serializers.BooleanField(),
        "overage": inline_serializer(
            "UsageOverage", {meter: MeterLineOut() for meter in metering.METER_UNITS}
        ),
        "total_overage_cents": serializers.IntegerField(min_value=0),
    },
)


# --------------------------------------------------------------------------- fast path
#
# Reports arrive by the thousand, and DRF validates them field by field in Python. The fast
# path decodes the body straight into msgspec structs (types, bounds, required and unknown
# fields checked in C), then applies the few checks msgspec cannot express exactly as the
# DRF fields above do. It only ever accepts: whatever it would refuse, or is unsure of,
# goes to the DRF serializers above, so every 400 keeps its exact message and shape.

_Counter = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]
_Devices = Annotated[int, msgspec.Meta(ge=0, le=MAX_DEVICES)]
_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
_DATETIME = serializers.DateTimeField()
_SIZE_STEP = Decimal("0.001")
UNSET: Any = msgspec.UNSET


class _Report(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    instance_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    report_id: str | msgspec.UnsetType = UNSET
    reported_at: str | msgspec.UnsetType = UNSET
    started_at: str | msgspec.UnsetType = UNSET
    active_devices: _Devices
    total_devices: _Devices
    mqtt_messages_published: _Counter | msgspec.UnsetType = UNSET
    mqtt_messages_received: _Counter | msgspec.UnsetType = UNSET
    mqtt_bytes_sent: _Counter | msgspec.UnsetType = UNSET
    mqtt_bytes_received: _Counter | msgspec.UnsetType = UNSET
    http_requests: _Counter | msgspec.UnsetType = UNSET
    http_bytes_sent: _Counter | msgspec.UnsetType = UNSET
    http_bytes_received: _Counter | msgspec.UnsetType = UNSET
    postgres_size_mb: int | float | msgspec.UnsetType = UNSET
    postgres_row_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_ROWS)] | msgspec.UnsetType = UNSET


class _BatchReport(_Report, kw_only=True):
    reported_at: str  # type: ignore[assignment]  # required in a batch


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    reports: Annotated[list[_BatchReport], msgspec.Meta(min_length=1, max_length=MAX_BATCH_REPORTS)]


_REPORT_DECODER = msgspec.json.Decoder(_Report)
_BATCH_DECODER = msgspec.json.Decoder(_Batch)
_PLAIN_FIELDS = (
    "active_devices",
    "total_devices",
    *COUNTER_FIELDS,
    "postgres_row_count",
)


class NotFast(Exception):
    """The fast path will not decide this input; the DRF serializer will."""


def _plain_string(value: str) -> str:
    """What DRF's CharField keeps unchanged: ASCII, no surrounding blanks, no NUL."""
    if not value.isascii() or value.strip() != value or "\x00" in value:
        raise NotFast
    return value


def _datetime(value: str):
    try:
        return _DATETIME.to_internal_value(value)
    except serializers.ValidationError:
        raise NotFast from None


def _validated(report: _Report, now) -> dict:
    """The DRF serializer's validated_data for a report msgspec accepted, or NotFast."""
    instance_id = _plain_string(report.instance_id)
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise NotFast
    data: dict = {"customer_id": _plain_string(report.customer_id), "instance_id": instance_id}
    if report.report_id is not UNSET:
        try:
            data["report_id"] = uuid.UUID(hex=report.report_id)
        except ValueError:
            raise NotFast from None
    if report.reported_at is not UNSET:
        at = _datetime(report.reported_at)
        if not now - MAX_REPORT_AGE <= at <= now + MAX_CLOCK_SKEW:
            raise NotFast
        data["reported_at"] = at
    if report.started_at is not UNSET:
        started = _datetime(report.started_at)
        if started > now + MAX_CLOCK_SKEW:
            raise NotFast
        data["started_at"] = started
    for name in _PLAIN_FIELDS:
        value = getattr(report, name)
        if value is not UNSET:
            data[name] = value
    size = report.postgres_size_mb
    if size is not UNSET:
        if isinstance(size, float) and not math.isfinite(size):
            raise NotFast
        value = Decimal(str(size)).quantize(_SIZE_STEP, ROUND_HALF_UP)
        if not Decimal(0) <= value <= MAX_SIZE_MB:
            raise NotFast
        data["postgres_size_mb"] = value
    return data


def _json_body(request) -> bytes:
    """The raw body if it is plain UTF-8 JSON (what the fast path decodes), else NotFast."""
    media, _, params = request.META.get("CONTENT_TYPE", "").partition(";")
    if media.strip().lower() != "application/json":
        raise NotFast
    if params and params.strip().lower().replace(" ", "") not in ("charset=utf-8",):
        raise NotFast
    return request.body


def report_validate(request) -> Mapping:
    """One report's validated data: the fast path, else ReportInput (which raises the 400)."""
    try:
        return _validated(_REPORT_DECODER.decode(_json_body(request)), timezone.now())
    except (NotFast, msgspec.ValidationError, msgspec.DecodeError):
        pass
    data = ReportInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def batch_validate(request) -> list[Mapping]:
    """A batch's validated reports: the fast path, else BatchInput (which raises the 400)."""
    try:
        batch = _BATCH_DECODER.decode(_json_body(request))
        now = timezone.now()
        return [_validated(report, now) for report in batch.reports]
    except (NotFast, msgspec.ValidationError, msgspec.DecodeError):
        pass
    data = BatchInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data["reports"]
