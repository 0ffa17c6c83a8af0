from django.apps import AppConfig

from core import data_version


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self) -> None:
        # Models load once the app registry is ready, i.e. here.
        from subscriptions.models import Subscription

        # Part of a customer key's principal, held per process (customers.auth).
        data_version.watch(Subscription._meta.db_table)
