from django.apps import AppConfig

from core import data_version


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"

    def ready(self) -> None:
        from customers import schema  # noqa: F401 - registers OpenAPI auth extensions

        # Models load once the app registry is ready, i.e. here.
        from customers.models import Customer, CustomerApiKey

        # A customer key's principal is held per process under the data version
        # (customers.auth): writes to these rows change it; a key's use does not.
        data_version.watch(Customer._meta.db_table)
        data_version.watch(CustomerApiKey._meta.db_table, ignore_columns=["last_used_at"])
