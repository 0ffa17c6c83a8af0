"""Make sure a staff login exists, for `make run` on a fresh machine; with it, a staff API
token, so the first staff `curl` needs no hunt for `manage.py staff_token`."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from customers.credentials import staff_token_issue


class Command(BaseCommand):
    help = (
        "Create a superuser when no staff user exists: from DJANGO_SUPERUSER_USERNAME / "
        "DJANGO_SUPERUSER_PASSWORD / DJANGO_SUPERUSER_EMAIL if set, else `admin` with a random "
        "password printed once; also issue that user a staff API token, printed once."
    )

    def handle(self, *args, **options):
        user_model = get_user_model()
        if user_model.objects.filter(is_staff=True, is_active=True).exists():
            self.stdout.write("Staff login exists.")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@localhost")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = password is None
        if generated:
            password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(
            username=username, email=email, password=password
        )
        token = staff_token_issue(user=user, name="make run").raw_key
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created staff login {username!r} with password {password!r}. "
                    "It is shown only this once."
                )
            )
        else:
            self.stdout.write(f"Created staff login {username!r} from DJANGO_SUPERUSER_*.")
        self.stdout.write(
            self.style.WARNING(
                f"Staff API token of {username!r}: {token} (shown only this once; use it as "
                "`Authorization: Bearer <token>`)"
            )
        )
