"""Rotate the license signing key; old licenses keep verifying until their key is retired."""

from django.core.management.base import BaseCommand, CommandError

from licensing import signing


class Command(BaseCommand):
    help = (
        "Make a new license signing key. The old public key stays published in "
        "/.well-known/jwks.json, so licenses it signed keep verifying until you retire it "
        "with --retire=KID (after every instance has fetched a license signed with the new key)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retire",
            metavar="KID",
            help="Stop publishing this old key id. Write it as --retire=KID: a key id may begin "
            "with '-', which a separate argument would take for an option.",
        )
        parser.add_argument("--list", action="store_true", help="List the key ids that verify.")

    def handle(self, *args, **options):
        if options["list"]:
            current = signing.signing_key().kid
            for key in signing.verification_keys():
                marker = " (signing)" if key["kid"] == current else ""
                self.stdout.write(f"{key['kid']}{marker}")
            return
        if options["retire"]:
            if options["retire"] == signing.signing_key().kid:
                raise CommandError("That is the current signing key; rotate first.")
            if not signing.retire(options["retire"]):
                raise CommandError(f"No rotated-out key with kid {options['retire']}.")
            self.stdout.write(self.style.SUCCESS(f"Retired {options['retire']}"))
            return
        old_kid, new_kid = signing.rotate()
        self.stdout.write(self.style.SUCCESS(f"Signing with {new_kid}; {old_kid} still verifies"))
