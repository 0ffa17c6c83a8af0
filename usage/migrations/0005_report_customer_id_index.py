"""(customer, id) on the usage reports: a cached usage window asks whether the customer has
a report newer than an id with one probe (usage/summaries.py, closed_window). The plain
(customer) index of the foreign key goes, so an insert updates as many indexes as before:
(customer, reported_at) and (customer, id) lead with the customer and serve its lookups.

On the partitioned table (migration 0004) both are partitioned indexes: the drop and the
create reach every partition, and partitions made later get the new one. The foreign key
itself is left as it is (Django's AlterField would drop and re-add it, checking every row).
"""

import django.db.models.deletion
from django.db import migrations, models

FOREIGN_KEY_INDEX = "usage_usagereport_customer_id_c2576b21"


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_staff_roles"),
        ("usage", "0004_partition_usage_reports"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usagereport",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_reports",
                        to="customers.customer",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{FOREIGN_KEY_INDEX}"',
                    reverse_sql=(
                        f'CREATE INDEX IF NOT EXISTS "{FOREIGN_KEY_INDEX}" '
                        'ON "usage_usagereport" ("customer_id")'
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="usagereport",
            index=models.Index(fields=["customer", "id"], name="usage_report_cust_id_idx"),
        ),
    ]
