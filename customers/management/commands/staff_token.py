"""Issue a per-staff API token (`Authorization: Bearer st_...`)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from customers.credentials import staff_token_issue


class Command(BaseCommand):
    help = "Issue a bearer token that acts as the given staff user; printed once, stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="Username of an active staff user.")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None or not (user.is_staff and user.is_active):
            raise CommandError(f"{options['user']!r} is not an active staff user.")
        issued = staff_token_issue(user=user, name=options["name"])
        self.stdout.write(issued.raw_key)
