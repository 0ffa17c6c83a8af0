"""Usage viewer CLI, as the guide's `npm run usage -- --customer X [--days N] | --all`."""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer
from usage import metering, selectors


def _gb(value: int) -> str:
    return f"{Decimal(value) / metering.BYTES_PER_GB:.3f}"


def _usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"


class Command(BaseCommand):
    help = "Show usage: one customer's daily series and consumption, or every customer's."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--customer", metavar="CUSTOMER_ID", help="cust_... id.")
        target.add_argument("--all", action="store_true", help="Every customer, one line each.")
        parser.add_argument(
            "--days", type=int, default=30, help="Days of history for --customer (default 30)."
        )

    def handle(self, *args, **options):
        if not 1 <= options["days"] <= 366:
            raise CommandError("--days must be from 1 to 366.")
        if options["all"]:
            self._all()
        else:
            self._customer(options["customer"], options["days"])

    def _customer(self, customer_id: str, days: int) -> None:
        customer = (
            Customer.objects.select_related("subscription").filter(customer_id=customer_id).first()
        )
        if customer is None:
            raise CommandError(f"No customer {customer_id}")
        history = selectors.usage_history(customer=customer, days=days)
        self.stdout.write(
            self.style.SUCCESS(f"{customer.customer_id} <{customer.email}>, last {days} days")
        )
        header = (
            f"{'DATE':<10} {'REPORTS':>7} {'PEAK DEV':>8} {'DEVICE-H':>10} {'MQTT MSGS':>11} "
            f"{'MQTT GB':>9} {'HTTP REQ':>10} {'HTTP GB':>9} {'STORAGE MB':>11}"
        )
        self.stdout.write(header)
        rows = [(day.isoformat(), totals) for day, totals in history.daily]
        for label, t in [*rows, ("TOTAL", history.totals)]:
            if label == "TOTAL":
                self.stdout.write("-" * len(header))
            self.stdout.write(
                f"{label:<10} {t.report_count:>7} {t.peak_active_devices:>8} "
                f"{t.device_hours:>10.1f} "
                f"{t.mqtt_messages_published + t.mqtt_messages_received:>11} "
                f"{_gb(t.mqtt_bytes):>9} {t.http_requests:>10} {_gb(t.http_bytes):>9} "
                f"{t.peak_storage_mb:>11.1f}"
            )
        result = selectors.usage_consumption(customer=customer)
        period = result.period
        self.stdout.write("")
        self.stdout.write(
            f"Billing period {period.first_day} to {period.end_day} ({period.source}), "
            f"plan {result.plan.name}{'' if result.billable else ' (not billable)'}"
        )
        self.stdout.write(
            f"{'METER':<20} {'USED':>14} {'ALLOWANCE':>12} {'OVERAGE':>14} {'PRICE':>6} "
            f"{'AMOUNT':>10}"
        )
        for meter, line in result.lines.items():
            allowance = "unlimited" if line.allowance is None else f"{line.allowance:,}"
            self.stdout.write(
                f"{meter:<20} {line.used:>14.3f} {allowance:>12} {line.overage:>14.3f} "
                f"{line.unit_price:>6} {_usd(line.amount_cents):>10}"
            )
        self.stdout.write(f"{'TOTAL OVERAGE':<71} {_usd(result.total_cents):>10}")

    def _all(self) -> None:
        header = (
            f"{'CUSTOMER ID':<22} {'PLAN':<13} {'DEV NOW':>7} {'MAX':>5} {'PEAK':>5} "
            f"{'MQTT GB':>9} {'HTTP GB':>9} {'API CALLS':>10} {'GB-MONTHS':>10} {'OVERAGE':>10}"
        )
        self.stdout.write(header)
        for customer in selectors.customers_with_device_usage().order_by("customer_id"):
            result = selectors.usage_consumption(customer=customer)
            usage = result.usage
            flag = " !" if customer.over_device_limit or result.over_device_limit else ""
            max_devices = "-" if customer.max_devices < 0 else customer.max_devices
            gb_months = usage.storage_gb_months(result.period.seconds)
            self.stdout.write(
                f"{customer.customer_id:<22} {result.plan.name:<13} "
                f"{customer.current_devices:>7} {max_devices:>5} {usage.peak_active_devices:>5} "
                f"{_gb(usage.mqtt_bytes):>9} {_gb(usage.http_bytes):>9} {usage.api_calls:>10} "
                f"{gb_months:>10.3f} {_usd(result.total_cents):>10}{flag}"
            )
        self.stdout.write("! = above maxDevices now or at a peak this billing period")
