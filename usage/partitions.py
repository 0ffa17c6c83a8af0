"""Monthly partitions of the raw usage reports (PostgreSQL declarative partitioning).

On PostgreSQL, migration 0004 turns `usage_usagereport` into a table partitioned by range
of `reported_at`: one partition per UTC month (`usage_usagereport_pYYYYMM`), the rows that
existed before in `usage_usagereport_legacy` (up to the month after the newest), and a
default partition `usage_usagereport_kept` for the reports kept as baselines after their
month is dropped (and, should partitions ever not be created in time, new reports: nothing
is refused). Elsewhere (SQLite in development) the table stays a plain table and every
function here does nothing.

Maintenance (`usage_partitions_maintain`, a beat task every hour):

1. Create the partitions of this month and the next USAGE_PARTITIONS_AHEAD_MONTHS.
2. Drop each month whose days are all rolled up (before the roll-up cursor): the raw rows
   of a rolled-up day are no longer read, except each instance's baseline (its latest
   report before a later time, and the earlier reports whose counters it carries:
   `selectors.raw_predecessors`). Those are copied into the kept partition, then the month
   is detached and dropped, in one transaction: retention is a DROP TABLE, not a DELETE of
   millions of rows. Kept reports that are no longer anyone's baseline are deleted (a few
   rows per instance).

Uniqueness: a partitioned table's unique constraints must include `reported_at`, so
(customer, instance_id, reported_at) stays a real constraint, while (customer, report_id)
is a unique index on each partition; the insert (services._insert_ignoring_duplicates)
also skips a report whose report_id is stored in another month.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from usage.models import COUNTER_FIELDS, UsageReport
from usage.selectors import raw_predecessors, rolled_until

logger = logging.getLogger(__name__)

TABLE = UsageReport._meta.db_table
KEPT = f"{TABLE}_kept"
LEGACY = f"{TABLE}_legacy"
_BOUND = re.compile(r"FROM \((MINVALUE|'[^']+')\) TO \((MAXVALUE|'[^']+')\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE, or the default partition
    upper: datetime | None
    default: bool = False


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE]
        )
        return cursor.fetchone() is not None


def month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{TABLE}_p{start:%Y%m}"


def _moment(bound: str) -> datetime | None:
    if bound in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(bound.strip("'")).astimezone(UTC)


def partitions() -> list[Partition]:
    """The table's partitions, oldest first, the default one last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
            FROM pg_inherits JOIN pg_class AS child ON child.oid = pg_inherits.inhrelid
            WHERE pg_inherits.inhparent = to_regclass(%s)
            """,
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        if bound == "DEFAULT":
            found.append(Partition(name=name, lower=None, upper=None, default=True))
            continue
        match = _BOUND.search(bound)
        if match is None:  # not a range we made; left alone
            continue
        found.append(Partition(name=name, lower=_moment(match[1]), upper=_moment(match[2])))
    return sorted(
        found,
        key=lambda p: (p.default, p.lower or datetime.min.replace(tzinfo=UTC)),
    )


def _report_id_index(cursor, name: str) -> None:
    """(customer, report_id) unique within the partition (see the module's docstring)."""
    cursor.execute(
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}_report_id" ON "{name}" (customer_id, report_id)'
    )


def create_default(cursor) -> None:
    cursor.execute(f'CREATE TABLE IF NOT EXISTS "{KEPT}" PARTITION OF "{TABLE}" DEFAULT')
    _report_id_index(cursor, KEPT)


@transaction.atomic
def usage_partitions_ensure(*, first: date, months: int) -> list[str]:
    """Create the monthly partitions from the month of `first` for `months` months where
    missing; the names of those created. Reports already in the default partition for such
    a month (partitions were late) are moved into it."""
    if not is_partitioned():
        return []
    existing = partitions()
    created, start = [], month_start(first)
    for _ in range(months):
        end = next_month(start)
        covered = any(
            not p.default
            and (p.lower is None or p.lower < end)
            and (p.upper is None or p.upper > start)
            for p in existing
        )
        if not covered:
            _create_month(start, end)
            created.append(partition_name(start))
        start = end
    if created:
        logger.info("Usage partitions created: %s", ", ".join(created))
    return created


def _create_month(start: datetime, end: datetime) -> None:
    name = partition_name(start)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT 1 FROM "{KEPT}" WHERE reported_at >= %s AND reported_at < %s LIMIT 1',  # noqa: S608 - our names
            [start, end],
        )
        bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" {bounds}')
        else:  # the default partition holds reports of this month: move them in with it
            columns = _columns(cursor)
            cursor.execute(
                f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
            )
            cursor.execute(
                f'WITH moved AS (DELETE FROM "{KEPT}" WHERE reported_at >= %s AND reported_at < %s '  # noqa: S608
                f"RETURNING {columns}) "
                f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved',
                [start, end],
            )
            cursor.execute(f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" {bounds}')
        _report_id_index(cursor, name)


def _columns(cursor) -> str:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [TABLE],
    )
    return ", ".join(f'"{name}"' for (name,) in cursor.fetchall())


def _baselines_in(partition: Partition) -> list[int]:
    """Ids of the partition's reports that are a baseline after it: per customer and
    instance its latest report there, and for those that leave counters out the earlier
    reports whose counters they carry (`raw_predecessors` before the partition's end)."""
    missing = " OR ".join(f"{name} IS NULL" for name in COUNTER_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT ON (customer_id, instance_id) customer_id, instance_id, id, "  # noqa: S608
            f'({missing}) FROM "{partition.name}" '
            f"ORDER BY customer_id, instance_id, reported_at DESC, id DESC"
        )
        latest = cursor.fetchall()
    ids = {row_id for _, _, row_id, _ in latest}
    gaps: dict[int, set[str]] = {}
    for customer_pk, instance, _, leaves_out in latest:
        if leaves_out:
            gaps.setdefault(customer_pk, set()).add(instance)
    for customer_pk, instances in gaps.items():
        found = raw_predecessors(
            customer_pk=customer_pk, before=partition.upper, instances=instances
        )
        for _, rows in found.values():
            ids |= rows
    return sorted(ids)


@transaction.atomic
def _drop(partition: Partition) -> int:
    """Keep the partition's baselines, then detach and drop it; how many were kept."""
    keep = _baselines_in(partition)
    with connection.cursor() as cursor:
        columns = _columns(cursor)
        cursor.execute(f'ALTER TABLE "{TABLE}" DETACH PARTITION "{partition.name}"')
        # Its range is no partition's now: the copies land in the default partition.
        cursor.execute(
            f'INSERT INTO "{TABLE}" ({columns}) SELECT {columns} FROM "{partition.name}" '  # noqa: S608
            "WHERE id = ANY(%s) ON CONFLICT DO NOTHING",
            [keep],
        )
        cursor.execute(f'DROP TABLE "{partition.name}"')
    return len(keep)


@transaction.atomic
def _prune_kept(before: datetime) -> int:
    """Delete kept reports (before `before`, where the range partitions start) that are no
    longer any instance's baseline; how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT DISTINCT customer_id FROM "{KEPT}" WHERE reported_at < %s',  # noqa: S608
            [before],
        )
        customers = [pk for (pk,) in cursor.fetchall()]
        deleted = 0
        for customer_pk in customers:
            needed = set()
            for _, rows in raw_predecessors(customer_pk=customer_pk, before=before).values():
                needed |= rows
            cursor.execute(
                f'DELETE FROM "{KEPT}" WHERE customer_id = %s AND reported_at < %s '  # noqa: S608
                "AND NOT (id = ANY(%s))",
                [customer_pk, before, sorted(needed)],
            )
            deleted += cursor.rowcount
    return deleted


def usage_partitions_drop_rolled(*, before: date) -> list[str]:
    """Drop the monthly partitions that end on or before `before` (the roll-up cursor),
    oldest first, keeping their baselines; the names dropped."""
    if not is_partitioned():
        return []
    boundary = datetime(before.year, before.month, before.day, tzinfo=UTC)
    dropped = []
    for partition in partitions():
        if partition.default or partition.upper is None or partition.upper > boundary:
            continue
        kept = _drop(partition)
        dropped.append(partition.name)
        logger.info("Usage partition %s dropped (%d baseline reports kept)", partition.name, kept)
    remaining = [p for p in partitions() if not p.default]
    if dropped and remaining and remaining[0].lower is not None:
        _prune_kept(remaining[0].lower)
    return dropped


@transaction.atomic
def usage_partitions_maintain(*, now: datetime | None = None) -> dict[str, list[str]]:
    """Partitions ahead, rolled-up months dropped (see the module's docstring); one run at
    a time (a transaction-level advisory lock: a second run waits, then finds it done)."""
    if not is_partitioned():
        return {"created": [], "dropped": []}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [TABLE])
    today = (now or timezone.now()).astimezone(UTC).date()
    created = usage_partitions_ensure(
        first=today, months=settings.USAGE_PARTITIONS_AHEAD_MONTHS + 1
    )
    rolled = rolled_until()
    dropped = usage_partitions_drop_rolled(before=rolled) if rolled else []
    return {"created": created, "dropped": dropped}
