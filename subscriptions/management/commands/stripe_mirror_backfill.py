"""Fill the staff's dj-stripe mirror from Stripe: what `djstripe_sync_models` does for the
mirrored models, plus each invoice's payments, without leaving dj-stripe's stored API key."""

from django.core.management.base import BaseCommand, CommandError

from subscriptions import mirror


class Command(BaseCommand):
    help = (
        "Backfill the dj-stripe mirror (customers, subscriptions, invoices with their "
        "payments, payment intents, charges, refunds) from the Stripe account of "
        "STRIPE_SECRET_KEY. Safe to run again: it re-reads the current state. Exits non-zero "
        "when the mirror cannot run or an object failed (each failure is also an audit row "
        "stripe.mirror_failed)."
    )

    def handle(self, *args, **options):
        run = mirror.stripe_mirror_backfill()
        if run.skipped:
            raise CommandError(f"The mirror cannot run: {run.skipped}.")
        invoices = sum(1 for kind, _ in run.synced if kind == "invoice")
        self.stdout.write(
            f"Synced {', '.join(mirror.BACKFILL_MODELS)}; {invoices} invoice(s) with payments."
        )
        if run.failed:
            for kind, object_id, why in run.failed:
                self.stderr.write(f"failed: {kind} {object_id}: {why}")
            raise CommandError(f"{len(run.failed)} object(s) could not be mirrored.")
