"""dj-stripe as this project installs it: the staff's read-only mirror of Stripe.

Admin autodiscovery registers dj-stripe's own admin pages, which can edit the mirror, store API
keys in the database and create webhook endpoints at Stripe. None of that fits a read-only
mirror configured from the environment, so they are taken off once the admin has loaded
(`django.contrib.admin` comes first in INSTALLED_APPS); staff pages read the mirror through
`subscriptions.mirror.customer_billing_mirror`.
"""

from django.contrib import admin
from djstripe.apps import DjstripeAppConfig


class DjstripeMirrorConfig(DjstripeAppConfig):
    def ready(self) -> None:
        super().ready()
        for model in self.get_models():
            if admin.site.is_registered(model):
                admin.site.unregister(model)
