"""Customer manager CLI, as the guide's `npm run customer -- add|upgrade|list`."""

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from core.plans import ASSIGNABLE_PLANS
from customers.models import Customer
from licensing.services import license_get_or_issue
from lifecycle.entitlements import subscription_grant_plan
from lifecycle.offboarding import DeactivationOptions, customer_deactivate
from lifecycle.plan_changes import subscription_change_plan
from lifecycle.signup import customer_signup

# A subscription Stripe bills: its plan changes go through Stripe.
PAID_STATUSES = ("active", "past_due")


class Command(BaseCommand):
    help = "Manage customers: add, upgrade, deactivate, list."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(
            dest="action", required=True, metavar="{add,upgrade,deactivate,list}"
        )

        add = sub.add_parser("add", help="Create a customer with a trial, API key and license.")
        add.add_argument("--email", required=True, help="Customer email (unique).")
        add.add_argument("--name", default="", help="Contact person's full name.")
        add.add_argument("--company", default="", help="Company name (shown in the license).")
        add.add_argument("--password", default=None, help="Optional portal password.")
        add.add_argument(
            "--trial-days",
            type=int,
            default=None,
            help="Trial length in days (default DEFAULT_TRIAL_DAYS).",
        )

        upgrade = sub.add_parser(
            "upgrade",
            help="Change a customer's plan. With a Stripe subscription: through Stripe, as the "
            "API's upgrade does (proration, license re-signed, instance redeployed). Without "
            "one: only with --grant, which puts the customer on the plan by hand for 30 days "
            "without payment (audited as a grant).",
        )
        upgrade.add_argument("--id", required=True, dest="customer_id", help="cust_... id.")
        upgrade.add_argument("--plan", required=True, choices=ASSIGNABLE_PLANS, help="New plan.")
        upgrade.add_argument(
            "--grant",
            action="store_true",
            help="Grant the plan without Stripe (no payment); for customers without a paid "
            "Stripe subscription.",
        )

        deactivate = sub.add_parser(
            "deactivate",
            help="Deactivate: cancel the subscription now, revoke the license, soft-delete, and "
            "schedule permanent deletion after the retention window. Safe to re-run.",
        )
        deactivate.add_argument("--id", required=True, dest="customer_id", help="cust_... id.")
        deactivate.add_argument(
            "--retention-days",
            type=int,
            default=30,
            help="Days before permanent deletion (default 30).",
        )
        deactivate.add_argument(
            "--refund",
            action="store_true",
            help="Also refund the unused part of the period (pro-rated).",
        )
        deactivate.add_argument(
            "--keep-data", action="store_true", help="Do not schedule deletion."
        )

        listing = sub.add_parser("list", help="List customers, newest first.")
        listing.add_argument("--limit", type=int, default=50, help="How many (default 50).")

    def handle(self, *args, **options):
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options):
        try:
            result = customer_signup(
                email=options["email"],
                full_name=options["name"],
                company_name=options["company"],
                password=options["password"],
                trial_days=options["trial_days"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        customer = result.customer
        self.stdout.write(self.style.SUCCESS(f"Created {customer.customer_id} <{customer.email}>"))
        self.stdout.write(
            f"  plan:       {result.subscription.plan} ({result.subscription.status})"
        )
        self.stdout.write(f"  trial ends: {result.subscription.trial_ends_at:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(
            f"  namespace:  {result.deployment.namespace} ({result.deployment.status})"
        )
        self.stdout.write(f"  API key:    {result.api_key.raw_key}  (shown once)")
        self.stdout.write(f"  license:    {result.license.token}")

    def _upgrade(self, options):
        customer = (
            Customer.objects.select_related("subscription")
            .filter(customer_id=options["customer_id"])
            .first()
        )
        if customer is None:
            raise CommandError(f"No customer {options['customer_id']}")
        subscription = customer.subscription
        paid = subscription.stripe_subscription_id and subscription.status in PAID_STATUSES
        actor = "command:customer upgrade"
        try:
            if paid and options["grant"]:
                raise CommandError(
                    f"{customer.customer_id} pays through Stripe; Stripe's webhooks would undo a "
                    "grant. Drop --grant to change the plan through Stripe."
                )
            if paid:
                subscription = subscription_change_plan(
                    customer=customer, new_plan=options["plan"], actor=actor
                )
                how = "through Stripe, with proration"
            elif options["grant"]:
                subscription, _ = subscription_grant_plan(
                    customer=customer, plan=options["plan"], actor=actor
                )
                how = "granted by staff without payment"
            else:
                raise CommandError(
                    f"{customer.customer_id} has no paid Stripe subscription. Start a checkout "
                    "(POST /api/subscriptions/checkout), or pass --grant to put them on the plan "
                    "without payment."
                )
            # the license as it is now (re-signed by the change; fresh rows, not the ones above)
            issued = license_get_or_issue(customer=Customer.objects.get(pk=customer.pk))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{customer.customer_id} now on {subscription.plan} ({subscription.status}), "
                f"{how}; maxDevices {issued.claims['features']['maxDevices']}"
            )
        )

    def _deactivate(self, options):
        customer = Customer.objects.filter(customer_id=options["customer_id"]).first()
        if customer is None:
            raise CommandError(f"No customer {options['customer_id']}")
        try:
            deactivation = customer_deactivate(
                customer=customer,
                options=DeactivationOptions(
                    issue_refund=options["refund"],
                    delete_data=not options["keep_data"],
                    retention_days=options["retention_days"],
                ),
                actor="command:customer deactivate",
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} (re-run to complete the remaining steps)") from exc
        customer.refresh_from_db()
        when = customer.scheduled_deletion
        self.stdout.write(
            self.style.SUCCESS(
                f"{customer.customer_id} deactivated; license revoked; "
                + (f"deletion scheduled {when:%Y-%m-%d %H:%M} UTC" if when else "data kept")
                + (f"; refund {deactivation.refund.amount} cents" if deactivation.refund else "")
            )
        )

    def _list(self, options):
        total = Customer.objects.count()
        rows = Customer.objects.select_related("subscription")[: options["limit"]]
        header = (
            f"{'CUSTOMER ID':<22} {'EMAIL':<32} {'PLAN':<13} {'STATUS':<9} {'ACTIVE':<6} CREATED"
        )
        self.stdout.write(header)
        for customer in rows:
            subscription = getattr(customer, "subscription", None)
            self.stdout.write(
                f"{customer.customer_id:<22} {customer.email[:32]:<32} "
                f"{subscription.plan if subscription else '-':<13} "
                f"{subscription.status if subscription else '-':<9} "
                f"{'yes' if customer.is_active else 'no':<6} {customer.created_at:%Y-%m-%d}"
            )
        if total > options["limit"]:
            self.stdout.write(
                f"Showing the newest {options['limit']} of {total} customers; "
                "pass --limit N for more."
            )
