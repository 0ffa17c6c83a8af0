"""Run the deletion sweep now (the guide's `npm run execute-deletions`)."""

from django.core.management.base import BaseCommand

from lifecycle.deletion import cleanup_execute_due


class Command(BaseCommand):
    help = (
        "Permanently delete every customer whose retention window has ended: its Kubernetes "
        "namespace and all its rows, keeping an anonymised record. Safe to run twice or "
        "concurrently. Beat runs the same sweep daily at 02:00 UTC."
    )

    def handle(self, *args, **options):
        deleted = cleanup_execute_due(actor="command:execute_deletions")
        self.stdout.write(f"Deleted {deleted} customers")
