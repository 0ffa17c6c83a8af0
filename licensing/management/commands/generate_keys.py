"""Write the RS256 license key pair, as the guide's `npm run generate-keys`."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from licensing import signing


class Command(BaseCommand):
    help = (
        "Generate the RSA key pair that signs licenses: the private key at "
        "LICENSE_PRIVATE_KEY_PATH (mode 0600, keep secret) and the public key at "
        "LICENSE_PUBLIC_KEY_PATH (give it to customer instances)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Do nothing when the private key already exists (used by `make run`).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Overwrite an existing key pair. Every license signed with it stops verifying; "
            "prefer `rotate_license_key`.",
        )
        parser.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048).")

    def handle(self, *args, **options):
        private_path = Path(settings.LICENSE_PRIVATE_KEY_PATH)
        public_path = Path(settings.LICENSE_PUBLIC_KEY_PATH)
        if private_path.exists():
            if options["if_missing"]:
                self.stdout.write(f"License key exists: {private_path}")
                return
            if not options["force"]:
                raise CommandError(
                    f"{private_path} exists. Use --force to overwrite it, or rotate_license_key."
                )
        kid = signing.write_key_pair(private_path, public_path, bits=options["bits"])
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {private_path} (0600) and {public_path}; kid {kid}")
        )
