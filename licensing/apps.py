from django.apps import AppConfig

from core import data_version


class LicensingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "licensing"

    def ready(self) -> None:
        # Models load once the app registry is ready, i.e. here.
        from licensing.models import LicenseRevocation

        # Part of a customer key's principal, held per process (customers.auth).
        data_version.watch(LicenseRevocation._meta.db_table)
