"""The staff roles of the back-office as Django groups (data only).

- Support: view everything; retry deployments, replay Stripe events, reactivate customers,
  issue (rotate, revoke) API keys.
- Finance: view everything; refunds, cancellations (at period end, keep, now), plan changes.
- Superusers have every permission: also deactivation, license revocation and deletion,
  which neither group gets.

The operations' permissions are made here on the models they act on; the admin checks
them by these codenames (customers/admin.py).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BACK_OFFICE_APPS = ("customers", "subscriptions", "licensing", "usage", "deployments")

# (app label, model, codename, name)
OPERATION_PERMISSIONS = [
    ("customers", "customer", "issue_refund", "Can issue refunds"),
    ("customers", "customer", "cancel_subscription", "Can cancel or keep subscriptions"),
    ("customers", "customer", "change_plan", "Can change a customer's plan"),
    ("customers", "customer", "deactivate_customer", "Can deactivate customers"),
    ("customers", "customer", "reactivate_customer", "Can reactivate customers"),
    ("customers", "customer", "manage_api_keys", "Can issue, rotate and revoke API keys"),
    ("customers", "customer", "revoke_license", "Can revoke and restore licenses"),
    ("customers", "customer", "delete_customer_data", "Can delete a customer's data"),
    ("deployments", "deployment", "retry_deployment", "Can retry failed deployments"),
    ("subscriptions", "stripeevent", "replay_stripeevent", "Can replay Stripe events"),
]

ROLES = {
    "Support": [
        "deployments.retry_deployment",
        "subscriptions.replay_stripeevent",
        "customers.reactivate_customer",
        "customers.manage_api_keys",
    ],
    "Finance": [
        "customers.issue_refund",
        "customers.cancel_subscription",
        "customers.change_plan",
    ],
}


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # The models' own permissions are made after all migrations (post_migrate): make them now.
    for app_config in apps.get_app_configs():
        if app_config.label in BACK_OFFICE_APPS:
            models_module = getattr(app_config, "models_module", None)  # None on a stub
            app_config.models_module = models_module or True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = models_module
    for app_label, model, codename, name in OPERATION_PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    views = Permission.objects.filter(
        content_type__app_label__in=BACK_OFFICE_APPS, codename__startswith="view_"
    )
    for role, permissions in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*views)
        for permission in permissions:
            app_label, codename = permission.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()
    Permission = apps.get_model("auth", "Permission")
    for app_label, _model, codename, _name in OPERATION_PERMISSIONS:
        Permission.objects.filter(content_type__app_label=app_label, codename=codename).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0003_offboarding"),
        ("subscriptions", "0003_payments_and_refund_parts"),
        ("licensing", "0001_initial"),
        ("usage", "0003_optional_traffic_and_storage"),
        ("deployments", "0003_deployment_retry_at"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
