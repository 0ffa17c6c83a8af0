"""Usage reported by customer instances, its daily roll-up, and metered-billing bookkeeping.

Counters in a report are cumulative since the instance started counting (see the README,
"Usage reporting"); the server derives deltas at metering time (`usage/metering.py`), so a
retried report adds nothing and a missed one loses nothing.
"""

from __future__ import annotations

from django.db import models

from customers.models import Customer

# Cumulative counters of a report, in the guide's field names. Their per-report deltas are
# what is billed; the raw rows keep the cumulative values.
COUNTER_FIELDS = (
    "mqtt_messages_published",
    "mqtt_messages_received",
    "mqtt_bytes_sent",
    "mqtt_bytes_received",
    "http_requests",
    "http_bytes_sent",
    "http_bytes_received",
)
# Point-in-time values of a report.
GAUGE_FIELDS = ("active_devices", "total_devices", "postgres_size_mb", "postgres_row_count")
# What a report may leave out: an absent counter is not measured (it neither resets nor
# adds), an absent gauge holds nothing. Devices are always reported.
OPTIONAL_FIELDS = (*COUNTER_FIELDS, "postgres_size_mb", "postgres_row_count")
# The meters an instance can report, and the fields that report each.
METER_FIELDS = {
    "devices": ("active_devices", "total_devices"),
    "mqtt": COUNTER_FIELDS[:4],
    "http": COUNTER_FIELDS[4:],
    "storage": ("postgres_size_mb", "postgres_row_count"),
}


class UsageReport(models.Model):
    """One report of one instance, exactly as received (the hot path writes only this row).

    Unique on (customer, report_id) and on (customer, instance_id, reported_at): a retry
    of a report hits one of them and is answered as a duplicate without a second row.
    """

    # No index of its own: (customer, reported_at) and (customer, id) below lead with it.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="usage_reports", db_index=False
    )
    instance_id = models.CharField(max_length=100)
    report_id = models.UUIDField(null=True, blank=True)
    # When the instance took the snapshot (client clock, whole seconds); server time if absent.
    reported_at = models.DateTimeField()
    received_at = models.DateTimeField()
    # When the instance's counters started (its process start); a change means a reset.
    started_at = models.DateTimeField(null=True, blank=True)
    active_devices = models.PositiveIntegerField()
    total_devices = models.PositiveIntegerField()
    # Traffic and storage are optional (instances of the guide's era report devices only):
    # NULL means "not measured by this instance", never zero (see usage/metering.py).
    mqtt_messages_published = models.PositiveBigIntegerField(null=True, blank=True)
    mqtt_messages_received = models.PositiveBigIntegerField(null=True, blank=True)
    mqtt_bytes_sent = models.PositiveBigIntegerField(null=True, blank=True)
    mqtt_bytes_received = models.PositiveBigIntegerField(null=True, blank=True)
    http_requests = models.PositiveBigIntegerField(null=True, blank=True)
    http_bytes_sent = models.PositiveBigIntegerField(null=True, blank=True)
    http_bytes_received = models.PositiveBigIntegerField(null=True, blank=True)
    # MB = 10^6 bytes, kept to the kB.
    postgres_size_mb = models.DecimalField(max_digits=13, decimal_places=3, null=True, blank=True)
    postgres_row_count = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-reported_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "report_id"], name="usage_report_report_id_unique"
            ),
            models.UniqueConstraint(
                fields=["customer", "instance_id", "reported_at"],
                name="usage_report_instance_time_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "reported_at"], name="usage_report_cust_time_idx"),
            models.Index(fields=["reported_at"], name="usage_report_time_idx"),
            # The customer's reports newer than an id in one probe: what tells a cached
            # usage window that a report arrived since (usage/summaries.py, closed_window).
            models.Index(fields=["customer", "id"], name="usage_report_cust_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}/{self.instance_id} @ {self.reported_at:%Y-%m-%d %H:%M:%S}"


class UsageDaily(models.Model):
    """One customer's usage on one UTC day, rolled up from raw reports older than the
    retention age. Counters hold the sum of per-report deltas; gauges their peaks and
    time integrals, so any total computed from raw reports is computed equally from here.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    report_count = models.PositiveIntegerField(default=0)
    mqtt_messages_published = models.PositiveBigIntegerField(default=0)
    mqtt_messages_received = models.PositiveBigIntegerField(default=0)
    mqtt_bytes_sent = models.PositiveBigIntegerField(default=0)
    mqtt_bytes_received = models.PositiveBigIntegerField(default=0)
    http_requests = models.PositiveBigIntegerField(default=0)
    http_bytes_sent = models.PositiveBigIntegerField(default=0)
    http_bytes_received = models.PositiveBigIntegerField(default=0)
    # Integrals over the day of the instances' summed gauges (see metering.GAP_CAP).
    device_seconds = models.PositiveBigIntegerField(default=0)
    storage_kb_seconds = models.PositiveBigIntegerField(default=0)
    peak_active_devices = models.PositiveIntegerField(default=0)
    peak_total_devices = models.PositiveIntegerField(default=0)
    peak_storage_kb = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day"]
        verbose_name = "usage day"
        constraints = [
            models.UniqueConstraint(fields=["customer", "day"], name="usage_daily_customer_day"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day}"


class UsageRollupCursor(models.Model):
    """Singleton: days before `rolled_until` live in UsageDaily, later days in raw reports.

    Of the rolled-up raw reports only the latest of each instance is kept (its cumulative
    counters and gauges are what the next report's delta and interval start from).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rolled_until = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="usage_rollup_cursor_singleton")
        ]

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until}"


class UsageBillingRecord(models.Model):
    """What was pushed to Stripe for one meter of one customer's billing period.

    One row per (customer, period_start, meter). Push protocol (services
    `usage_billing_push_begin` / `usage_billing_push_confirm`):
    1. `quantity`/`amount_cents` hold the latest computed overage of the period;
    2. begin: if more is owed than `quantity_pushed`, the difference and a fresh, stable
       `identifier` are saved as in flight *before* Stripe is called;
    3. the meter event is sent with that identifier (Stripe rejects a second event with the
       same identifier), then confirm adds the in-flight amount to the pushed totals.
    A crash between 2 and 3 leaves the row in flight: the retry re-sends the same
    identifier with the same value, so nothing is pushed twice.
    """

    class Meter(models.TextChoices):
        MQTT_GB = "mqtt_gb"
        HTTP_GB = "http_gb"
        STORAGE_GB_MONTHS = "storage_gb_months"
        API_CALLS_THOUSANDS = "api_calls_thousands"
        EXTRA_DEVICES = "extra_devices"

    class Status(models.TextChoices):
        PENDING = "pending"  # nothing in flight; `quantity` may exceed `quantity_pushed`
        IN_FLIGHT = "in_flight"  # an event with `identifier` may or may not be at Stripe
        PUSHED = "pushed"  # everything computed so far is at Stripe

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="usage_billing_records"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    meter = models.CharField(max_length=32, choices=Meter.choices)
    # The plan the overage was computed against at the last sync: a period that has ended is
    # recomputed against it (not against a plan the customer moved to since).
    plan = models.CharField(max_length=32, blank=True)
    quantity = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    amount_cents = models.PositiveBigIntegerField(default=0)
    quantity_pushed = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    amount_cents_pushed = models.PositiveBigIntegerField(default=0)
    in_flight_quantity = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    in_flight_amount_cents = models.PositiveBigIntegerField(default=0)
    push_count = models.PositiveIntegerField(default=0)
    # Stripe meter event identifier of the event in flight, else of the last one pushed.
    identifier = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "customer_id", "meter"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start", "meter"], name="usage_billing_record_unique"
            ),
            models.UniqueConstraint(
                fields=["identifier"],
                condition=~models.Q(identifier=""),
                name="usage_billing_identifier_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.period_start:%Y-%m-%d} {self.meter} ({self.status})"

    def next_identifier(self) -> str:
        """Stable id of the next meter event: same record and push number, same identifier."""
        return (
            f"usage-{self.customer.customer_id}-{self.period_start:%Y%m%dT%H%M%S}"
            f"-{self.meter}-{self.push_count + 1}"
        )


class CustomerUsage(Customer):
    """Customers as seen from usage: the admin's consumption view and device-limit flag."""

    class Meta:
        proxy = True
        verbose_name = "customer usage"
        verbose_name_plural = "customer usage"
