"""Create the guide's products and monthly prices, and the overage meters and metered prices,
in Stripe, once: prices are found by lookup key and meters by event name."""

import time

from django.core.management.base import BaseCommand, CommandError

from core.plans import PAID_PLANS, PLANS
from subscriptions import stripe_api


class Command(BaseCommand):
    help = (
        "Create the Starter (2900), Professional (9900) and Enterprise (29900) USD monthly "
        "prices and their products in the Stripe account of STRIPE_SECRET_KEY, and one Billing "
        "Meter (event name iotistic_<meter>) and one metered price (1 cent per unit, lookup key "
        "iotistic_overage_<meter>) per overage meter. Idempotent: prices are found by lookup "
        "key and meters by event name, so running it again creates nothing. Prints the ids; "
        "STRIPE_PRICE_* settings, when set, still take precedence for the plans."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Wait up to SECONDS for Stripe to answer first (a Stripe stand-in that is "
            "still starting, as under `make run`).",
        )

    def handle(self, *args, **options):
        if not stripe_api.is_configured():
            raise CommandError("STRIPE_SECRET_KEY is not set.")
        self._wait_for_stripe(options["wait"])
        for name in PAID_PLANS:
            plan = PLANS[name]
            try:
                price_id, created = stripe_api.price_ensure(
                    lookup_key=plan.stripe_lookup_key,
                    product_name=plan.display_name,
                    description=stripe_api.PRODUCT_DESCRIPTIONS[name],
                    unit_amount=plan.price_cents,
                )
            except stripe_api.StripeError as exc:
                raise CommandError(f"{name}: {exc.user_message}") from exc
            verb = "created" if created else "exists "
            self.stdout.write(
                f"{verb} STRIPE_PRICE_{name.upper()}={price_id}  ({plan.stripe_lookup_key})"
            )
        for meter, display_name in stripe_api.OVERAGE_METERS.items():
            event_name = stripe_api.meter_event_name(meter)
            lookup_key = stripe_api.overage_lookup_key(meter)
            try:
                meter_id, meter_created = stripe_api.meter_ensure(
                    event_name=event_name, display_name=f"{display_name} (US cents)"
                )
                price_id, price_created = stripe_api.metered_price_ensure(
                    lookup_key=lookup_key,
                    meter_id=meter_id,
                    product_name=f"Iotistic {display_name}",
                    description=f"{display_name}, billed in US cents (1 unit = $0.01)",
                )
            except stripe_api.StripeError as exc:
                raise CommandError(f"{meter}: {exc.user_message}") from exc
            verb = "created" if meter_created else "exists "
            self.stdout.write(f"{verb} meter {meter_id}  ({event_name})")
            verb = "created" if price_created else "exists "
            self.stdout.write(f"{verb} metered price {price_id}  ({lookup_key})")

    def _wait_for_stripe(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                stripe_api.ping()
            except stripe_api.StripeError as exc:
                if not exc.retryable or time.monotonic() >= deadline:
                    raise CommandError(f"Stripe does not answer: {exc.user_message}") from exc
                time.sleep(0.25)
            else:
                return
