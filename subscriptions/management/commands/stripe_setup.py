"""Create the guide's products and monthly prices in Stripe, once, by lookup key."""

from django.core.management.base import BaseCommand, CommandError

from subscriptions import stripe_api
from subscriptions.plans import PAID_PLANS, PLANS


class Command(BaseCommand):
    help = (
        "Create the Starter (2900), Professional (9900) and Enterprise (29900) USD monthly "
        "prices and their products in the Stripe account of STRIPE_SECRET_KEY. Idempotent: "
        "prices are found by lookup key, so running it again creates nothing. Prints the price "
        "ids; STRIPE_PRICE_* settings, when set, still take precedence."
    )

    def handle(self, *args, **options):
        if not stripe_api.is_configured():
            raise CommandError("STRIPE_SECRET_KEY is not set.")
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
