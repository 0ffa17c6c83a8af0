"""A customer's raw usage per UTC day, summed in SQL and kept in cached chunks: the same
numbers as `metering.daily_usage` over the raw reports, without reading them into Python.

History and consumption cover up to a month of raw reports (10 instances reporting every 5
minutes make 86,400 rows). The steps:

1. The window's raw time is cut into *chunks*: each past UTC day, today up to the last
   whole LIVE_STEP, and the *live* rest (up to the window's end), recomputed every time.
2. A chunk is summarized by two statements over its rows (window functions and GROUP BY):
   per instance, its report count, first and last report, the sum of the counter deltas
   between its consecutive reports (`metering.counter_deltas` in SQL: a restart counts in
   full), and which optional fields it measured; per day, the gauge integrals and peaks of
   the customer's summed gauges (a sweep over the start and end of every report's segment),
   and which reports before the chunk hold a gauge into it.
3. Closed chunks are cached (Django's cache) by customer, roll-up cursor and bounds, with
   the number of reports they were made of. Raw reports are only ever inserted (roll-up
   deletes rows of rolled-up days only, and moves the cursor, which is in the key), so a
   chunk is current while its count is: one COUNT over all cached chunks (an index-only
   scan) checks them; on a difference they are counted one by one and the changed ones
   rebuilt. A chunk's gauges also depend on the reports held into it from before its start:
   their ids are kept and compared with the previous chunk's last reports.
4. The window is put together here: per instance, each chunk's first report is compared
   with the last report before it (`metering.counter_deltas`; before the window, the
   baseline of `raw_predecessors`), the rest of its deltas come from SQL. That is exact
   while every report of the instance in the window measures the same counters (no absent
   counter has to be carried over a report, see `metering.carry`); an instance that changes
   what it measures within the window is counted from its raw rows by
   `metering.daily_usage` itself.

Every query filters by customer (see docs/scaling.md).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils.dateparse import parse_datetime

from customers.models import Customer
from usage import metering
from usage.db import prepared_cursor
from usage.models import COUNTER_FIELDS, UsageReport

DAY = metering.SECONDS_PER_DAY
CAP = int(metering.GAP_CAP.total_seconds())
# Today is cached up to the last whole step; the rest is summed on every read.
LIVE_STEP = 3600
# Bump when what a chunk holds, or how it is computed, changes.
CHUNK_VERSION = 1
CHUNK_TTL = 40 * DAY  # past days: longer than a report may arrive late (35 days)
PARTIAL_TTL = DAY  # today so far: replaced every LIVE_STEP
# Optional fields an instance may measure, in mask-bit order (the counters first).
MEASURED_FIELDS = (*COUNTER_FIELDS, "postgres_size_mb", "postgres_row_count")
ALL_COUNTERS = (1 << len(COUNTER_FIELDS)) - 1


def _epoch(column: str, vendor: str) -> str:
    """Whole seconds since 1970 (UTC) of `column`, rounded down, as metering counts time."""
    if vendor == "sqlite":
        # '%%' is one '%' in the executed statement (placeholders are %s there).
        return f"CAST(strftime('%%s', {column}) AS INTEGER)"
    return f"floor(extract(epoch FROM {column}))::bigint"


def _storage_kb(column: str, vendor: str) -> str:
    """postgres_size_mb in kB (exact: the column has three decimals), 0 when absent."""
    if vendor == "sqlite":  # as Django casts a decimal there
        return (
            f"COALESCE(CAST((CAST(ROUND((CAST(({column} * 1000) AS NUMERIC)), 0) AS NUMERIC)) "
            f"AS bigint), 0)"
        )
    return f"COALESCE((ROUND(({column} * 1000), 0))::bigint, 0)"


# --------------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class Edge:
    """A report at the start or end of an instance's part of a chunk."""

    id: int
    at: int
    started_at: int | None
    counters: tuple[int | None, ...]

    def point(self, instance_id: str) -> metering.Point:
        """As metering compares reports (gauges play no part in counter deltas)."""
        return metering.Point(
            instance_id=instance_id, at=self.at, counters=self.counters, started_at=self.started_at
        )


@dataclass(frozen=True)
class InstancePart:
    """One instance's reports in one chunk."""

    instance_id: str
    reports: int
    first: Edge
    last: Edge
    # Sum of the deltas of reports 2..n over the report before each (exact when all of the
    # part's reports measure the same counters: mask_low == mask_high).
    deltas: tuple[int, ...]
    mask_low: int  # lowest and highest bitmask of the counters a report measured
    mask_high: int
    measured: int  # bitmask (MEASURED_FIELDS) of the optional fields any report measured
    last_reported_at: datetime


@dataclass(frozen=True)
class Gauges:
    device_seconds: int = 0
    storage_kb_seconds: int = 0
    peak_active_devices: int = 0
    peak_total_devices: int = 0
    peak_storage_kb: int = 0


@dataclass(frozen=True)
class Chunk:
    """A customer's reports in [start, end) (epoch seconds, inside one UTC day), summed."""

    start: int
    end: int
    reports: int
    instances: tuple[InstancePart, ...]
    gauges: Gauges
    # Reports before `start` whose gauges hold into the chunk (at most one per instance).
    held_in: frozenset[int] = field(default_factory=frozenset)

    @property
    def day(self) -> date:
        return metering.utc_day(self.start)

    def key(self, customer: Customer, rolled: date | None) -> str:
        return (
            f"usage:chunk:{CHUNK_VERSION}:{customer.customer_id}:{rolled}:{self.start}:{self.end}"
        )


def chunk_key(customer: Customer, rolled: date | None, start: int, end: int) -> str:
    return Chunk(start=start, end=end, reports=0, instances=(), gauges=Gauges()).key(
        customer, rolled
    )


def _reports(customer_pk: int, start: int, end: int) -> QuerySet[UsageReport]:
    return UsageReport.objects.filter(
        customer_id=customer_pk,
        reported_at__gte=datetime.fromtimestamp(start, tz=UTC),
        reported_at__lt=datetime.fromtimestamp(end, tz=UTC),
    ).order_by()


# The statements read on every history and consumption (the live hour's two summaries, the
# newest-id probe) are SQL text built once per process from the model's _meta: building
# them through the ORM took half of a cached read. Per call only their parameters are made.


def _reports_select(vendor: str, names: Sequence[str]) -> str:
    """SELECT `names` (model fields, or `at`/`st`: reported_at/started_at in epoch seconds,
    `kb`: postgres_size_mb in kB) of one customer's reports in a time range; its
    parameters are those of `_range_params`."""
    opts = UsageReport._meta
    quote = connection.ops.quote_name
    table = quote(opts.db_table)

    def column(name: str) -> str:
        return f"{table}.{quote(opts.get_field(name).column)}"

    computed = {
        "at": _epoch(column("reported_at"), vendor),
        "st": _epoch(column("started_at"), vendor),
        "kb": _storage_kb(column("postgres_size_mb"), vendor),
    }
    selected = ", ".join(f"{computed.get(name) or column(name)} AS {quote(name)}" for name in names)
    return (
        f"SELECT {selected} FROM {table} "  # noqa: S608 - names from _meta
        f"WHERE ({column('customer')} = %s AND {column('reported_at')} >= %s "
        f"AND {column('reported_at')} < %s)"
    )


def _range_params(customer_pk: int, start: int, end: int) -> list:
    """The parameters of `_reports_select`: the customer's reports in [start, end)."""
    adapt = connection.ops.adapt_datetimefield_value
    return [
        customer_pk,
        adapt(datetime.fromtimestamp(start, tz=UTC)),
        adapt(datetime.fromtimestamp(end, tz=UTC)),
    ]


@functools.cache
def _parts_statement(vendor: str) -> str:
    """See _parts_sql."""
    inner = _reports_select(
        vendor, ("id", "instance_id", "reported_at", "at", "st", *MEASURED_FIELDS)
    )
    counters = COUNTER_FIELDS
    lags = ", ".join(f"lag({c}) OVER win AS p_{c}" for c in counters)
    mask = " + ".join(
        f"(CASE WHEN {c} IS NULL THEN 0 ELSE {1 << i} END)" for i, c in enumerate(counters)
    )
    restarted = " OR ".join(["st <> p_st", *(f"{c} < p_{c}" for c in counters)])
    measured = ", ".join(
        f"max(CASE WHEN {name} IS NULL THEN 0 ELSE 1 END)" for name in MEASURED_FIELDS
    )

    def edge(condition: str) -> str:
        return ", ".join(
            f"max(CASE WHEN {condition} THEN {column} END)"
            for column in ("id", "at", "st", *counters)
        )

    deltas = ", ".join(
        f"sum(CASE WHEN k = 1 THEN 0 WHEN rs = 1 THEN coalesce({c}, 0) WHEN {c} IS NULL THEN 0 "
        f"WHEN p_{c} IS NULL THEN {c} ELSE {c} - p_{c} END)"
        for c in counters
    )
    return f"""
        WITH r AS ({inner}),
        w AS (SELECT r.*, (at - %s) / {DAY} AS d, {mask} AS cm FROM r),
        x AS (
            SELECT w.*, row_number() OVER win AS k, lead(at) OVER win AS nat,
                   lag(st) OVER win AS p_st, {lags}
            FROM w WINDOW win AS (PARTITION BY instance_id, d ORDER BY reported_at, id)
        ),
        y AS (SELECT x.*, CASE WHEN {restarted} THEN 1 ELSE 0 END AS rs FROM x)
        SELECT instance_id, d, count(*), min(cm), max(cm), {measured},
               max(CASE WHEN nat IS NULL THEN reported_at END),
               {edge("k = 1")}, {edge("nat IS NULL")}, {deltas}
        FROM y GROUP BY instance_id, d
    """  # noqa: S608 - column names from the model, values are parameters


def _parts_sql(customer_pk: int, start: int, end: int, day0: int) -> tuple[str, list]:
    """Per (instance, day) of the reports in [start, end): see InstancePart."""
    return _parts_statement(connection.vendor), [*_range_params(customer_pk, start, end), day0]


@functools.cache
def _gauges_statement(vendor: str, marks: int) -> str:
    """See _gauges_sql; `marks`: how many day boundaries (the range's start and end too)."""
    inner = _reports_select(
        vendor, ("id", "instance_id", "reported_at", "at", "active_devices", "total_devices", "kb")
    )
    marks_sql = " UNION ALL ".join(["SELECT CAST(%s AS BIGINT), 0, 0, 0"] * marks)
    next_midnight = f"(%s + ((at - %s) / {DAY} + 1) * {DAY})"
    return f"""
        WITH r AS ({inner}),
        q AS (
            SELECT id, at, active_devices AS va, total_devices AS vt, kb AS vk,
                   lead(at) OVER (PARTITION BY instance_id ORDER BY reported_at, id) AS nat
            FROM r
        ),
        s AS (
            SELECT id, at, va, vt, vk, CASE WHEN at > %s THEN at ELSE %s END AS s,
                   CASE WHEN nat IS NOT NULL AND nat < at + {CAP} THEN nat
                        ELSE at + {CAP} END AS e0
            FROM q
        ),
        g AS (SELECT s.*, CASE WHEN e0 < %s THEN e0 ELSE %s END AS e FROM s),
        ev AS (
            SELECT s AS x, va AS da, vt AS dt, vk AS dk FROM g WHERE s < e
            UNION ALL SELECT e, -va, -vt, -vk FROM g WHERE s < e
            UNION ALL {marks_sql}
        ),
        run AS (
            SELECT x, sum(da) OVER o AS ra, sum(dt) OVER o AS rt, sum(dk) OVER o AS rk,
                   lead(x) OVER o AS nx
            FROM ev WINDOW o AS (ORDER BY x)
        )
        SELECT 0, (x - %s) / {DAY}, sum(ra * (nx - x)), sum(rk * (nx - x)),
               max(ra), max(rt), max(rk)
        FROM run WHERE nx > x GROUP BY 2
        UNION ALL
        SELECT 1, CASE WHEN at < %s THEN %s ELSE {next_midnight} END, id, 0, 0, 0, 0
        FROM g WHERE s < e AND (at < %s OR {next_midnight} < e)
    """  # noqa: S608 - column names from the model, values are parameters


def _gauges_sql(customer_pk: int, start: int, end: int, day0: int, until: int) -> tuple[str, list]:
    """Per day of [start, end): gauge integrals and peaks of the customer's summed gauges
    (kind 0); and the reports before each day's start in the range whose gauges hold into
    it (kind 1: boundary, id). Reports from CAP before `start` are read for that."""
    gauge_end = max(start, min(end, until))
    marks = [start, *range(day0 + DAY, end, DAY), end]
    return _gauges_statement(connection.vendor, len(marks)), [
        *_range_params(customer_pk, start - CAP, end),
        start,
        start,
        gauge_end,
        gauge_end,
        *marks,
        day0,
        start,
        start,
        day0,
        day0,
        start,
        day0,
        day0,
    ]


def _moment(value) -> datetime:
    if isinstance(value, str):  # SQLite hands back its text form, naive UTC
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _int(value) -> int:
    return int(value or 0)


def summarize(*, customer_pk: int, start: int, end: int, until: int) -> list[Chunk]:
    """The customer's reports in [start, end), one chunk per UTC day it touches. Gauge time
    is counted up to `until` (a closed chunk: `end`). The per-instance statement runs first,
    so the gauges may see a report the count misses (a later check rebuilds the chunk),
    never the other way round."""
    day0 = metering.day_start(metering.utc_day(start))
    n = len(COUNTER_FIELDS)
    parts: dict[int, list[InstancePart]] = defaultdict(list)
    with prepared_cursor() as cursor:
        cursor.execute(*_parts_sql(customer_pk, start, end, day0))
        for row in cursor.fetchall():
            instance_id, d, reports, mask_low, mask_high = row[:5]
            flags, rest = row[5 : 5 + len(MEASURED_FIELDS)], row[5 + len(MEASURED_FIELDS) :]
            last_reported_at, first, last, deltas = (
                rest[0],
                rest[1 : 4 + n],
                rest[4 + n : 7 + 2 * n],
                rest[7 + 2 * n :],
            )
            parts[int(d)].append(
                InstancePart(
                    instance_id=instance_id,
                    reports=int(reports),
                    first=_edge(first),
                    last=_edge(last),
                    deltas=tuple(_int(v) for v in deltas),
                    mask_low=int(mask_low),
                    mask_high=int(mask_high),
                    measured=sum(1 << i for i, flag in enumerate(flags) if flag),
                    last_reported_at=_moment(last_reported_at),
                )
            )
        cursor.execute(*_gauges_sql(customer_pk, start, end, day0, until))
        gauges: dict[int, Gauges] = {}
        held: dict[int, set[int]] = defaultdict(set)
        for kind, where, *values in cursor.fetchall():
            if kind == 0:
                gauges[int(where)] = Gauges(*(_int(v) for v in values))
            else:
                held[int(where)].add(int(values[0]))
    chunks = []
    for d in range((end - 1 - day0) // DAY + 1):
        lo, hi = max(start, day0 + d * DAY), min(end, day0 + (d + 1) * DAY)
        instances = tuple(sorted(parts.get(d, ()), key=lambda p: p.instance_id))
        chunks.append(
            Chunk(
                start=lo,
                end=hi,
                reports=sum(p.reports for p in instances),
                instances=instances,
                gauges=gauges.get(d, Gauges()),
                held_in=frozenset(held.get(lo, ())),
            )
        )
    return chunks


def _edge(values: Sequence) -> Edge:
    id_, at, started_at, *counters = values
    return Edge(
        id=int(id_),
        at=int(at),
        started_at=None if started_at is None else int(started_at),
        counters=tuple(None if c is None else int(c) for c in counters),
    )


# --------------------------------------------------------------------------- the cache


def _held_over(previous: Chunk | None, chunk: Chunk | None) -> bool:
    """Whether `chunk` was summarized with the reports of `previous` whose gauges hold into
    it: each instance's last report there less than CAP before the chunk's start, unless the
    instance's next report is at that very second."""
    if previous is None or chunk is None or previous.end != chunk.start:
        return True
    firsts = {p.instance_id: p.first.at for p in chunk.instances}
    held = frozenset(
        p.last.id
        for p in previous.instances
        if p.last.at > chunk.start - CAP and firsts.get(p.instance_id) != chunk.start
    )
    return held == chunk.held_in


def _spans(bounds: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Contiguous runs of chunk bounds, each as one (start, end)."""
    runs: list[tuple[int, int]] = []
    for lo, hi in bounds:
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi)
        else:
            runs.append((lo, hi))
    return runs


def cached_chunks(
    *, customer: Customer, rolled: date | None, bounds: Sequence[tuple[int, int]], now: int
) -> list[Chunk]:
    """The closed chunks `bounds` (contiguous, oldest first), from the cache where current,
    else summarized and cached."""
    if not bounds:
        return []
    keys = [chunk_key(customer, rolled, lo, hi) for lo, hi in bounds]
    found = cache.get_many(keys)  # read before counting: a chunk is never newer than the count
    chunks: list[Chunk | None] = [found.get(key) for key in keys]
    span_start, span_end = bounds[0][0], bounds[-1][1]
    stale = {i for i, chunk in enumerate(chunks) if chunk is None}
    if not stale:
        counted = _reports(customer.pk, span_start, span_end).count()
        if counted != sum(c.reports for c in chunks if c is not None):
            stale = _changed(customer, bounds, chunks)
    if stale:
        _rebuild(customer, rolled, bounds, chunks, stale, now)
    # A chunk whose own reports did not change may still hold gauges of reports before it
    # that did (a late report in the previous day's last CAP): rebuilding it is enough.
    held_over = {i for i in range(1, len(bounds)) if not _held_over(chunks[i - 1], chunks[i])}
    if held_over:
        _rebuild(customer, rolled, bounds, chunks, held_over, now)
    return [chunk for chunk in chunks if chunk is not None]


def _changed(
    customer: Customer, bounds: Sequence[tuple[int, int]], chunks: Sequence[Chunk | None]
) -> set[int]:
    """Chunks whose count of reports differs from now (one grouped count over their days)."""
    counts = dict(
        _reports(customer.pk, bounds[0][0], bounds[-1][1])
        .annotate(day=TruncDate("reported_at", tzinfo=UTC))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return {
        i
        for i, chunk in enumerate(chunks)
        if chunk is None or counts.get(metering.utc_day(bounds[i][0]), 0) != chunk.reports
    }


def _rebuild(
    customer: Customer,
    rolled: date | None,
    bounds: Sequence[tuple[int, int]],
    chunks: list[Chunk | None],
    stale: set[int],
    now: int,
) -> None:
    index = {lo: i for i, (lo, _) in enumerate(bounds)}
    fresh: dict[str, Chunk] = {}
    for lo, hi in _spans([bounds[i] for i in sorted(stale)]):
        for chunk in summarize(customer_pk=customer.pk, start=lo, end=hi, until=now):
            chunks[index[chunk.start]] = chunk
            fresh[chunk.key(customer, rolled)] = chunk
    whole = {key for key, chunk in fresh.items() if chunk.end - chunk.start == DAY}
    cache.set_many({k: c for k, c in fresh.items() if k in whole}, timeout=CHUNK_TTL)
    cache.set_many({k: c for k, c in fresh.items() if k not in whole}, timeout=PARTIAL_TTL)


# --------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class InstanceWindow:
    """One instance's raw reports in a window: how many, the latest, what it measured."""

    instance_id: str
    reports: int
    last_reported_at: datetime
    measured: frozenset[str]


@dataclass(frozen=True)
class RawWindow:
    days: dict[date, metering.UsageTotals]
    instances: list[InstanceWindow]  # by instance_id
    reports: int


Baselines = dict[str, metering.Point]


@dataclass(frozen=True)
class FoldedInstance:
    """One instance's parts in a run of chunks: what the history lists of it, which
    counters its reports measured, and its first and last report (the counter deltas to
    the report before the run and to the next part come from them)."""

    reports: int
    last_reported_at: datetime
    measured: int
    masks: frozenset[int]  # every mask_low and mask_high of its parts
    first_day: date
    first: Edge
    last: Edge

    @property
    def uniform(self) -> bool:
        """Whether every report measures the same counters (else: from its raw rows)."""
        return len(self.masks) == 1


@dataclass(frozen=True)
class Folded:
    """A run of a window's chunks (oldest first), summed per day and folded per instance.
    The days' counters hold every delta of the uniform instances except each one's first
    report against its baseline before the window (that baseline is read per request:
    a late report before the window may change it)."""

    days: dict[date, metering.UsageTotals]
    instances: dict[str, FoldedInstance]
    reports: int


@dataclass(frozen=True)
class ClosedWindow:
    """A window's closed chunks put together, cached as one entry (see closed_window)."""

    span_reports: int  # reports of every chunk it was made of, the lead-in day's too
    known: dict[str, Edge]  # the lead-in day's last report of each instance
    folded: Folded
    newest_id: int = 0  # the customer's newest report id when it was last checked
    # PostgreSQL transactions (virtual ids) writing reports right after newest_id was read:
    # one of them may still commit a report with a smaller id.
    writers: tuple[str, ...] = ()
    settled: bool = False  # every report it misses has an id above newest_id


WINDOW_VERSION = 2


def window_key(customer: Customer, rolled: date | None, start: int, end: int) -> str:
    return f"usage:window:{WINDOW_VERSION}:{customer.customer_id}:{rolled}:{start}:{end}"


def _gauges_into(totals: metering.UsageTotals, chunk: Chunk) -> None:
    totals.report_count += chunk.reports
    g = chunk.gauges
    totals.device_seconds += g.device_seconds
    totals.storage_kb_seconds += g.storage_kb_seconds
    totals.peak_active_devices = max(totals.peak_active_devices, g.peak_active_devices)
    totals.peak_total_devices = max(totals.peak_total_devices, g.peak_total_devices)
    totals.peak_storage_kb = max(totals.peak_storage_kb, g.peak_storage_kb)


def fold(chunks: Sequence[Chunk], onto: Folded | None = None) -> Folded | None:
    """`onto` (a run of chunks just before these) extended by `chunks`; None when an
    instance of `onto` that measured the same counters throughout measures others in
    `chunks` (its deltas are in `onto`'s days: fold the whole run again instead)."""
    days = {day: replace(t) for day, t in onto.days.items()} if onto else {}
    instances = dict(onto.instances) if onto else {}
    masks: dict[str, set[int]] = defaultdict(set)
    for chunk in chunks:
        for part in chunk.instances:
            masks[part.instance_id] |= {part.mask_low, part.mask_high}
    for instance, found in masks.items():
        before = instances.get(instance)
        if before is not None and before.uniform and len(found | before.masks) > 1:
            return None
    for chunk in chunks:
        totals = days.setdefault(chunk.day, metering.UsageTotals())
        _gauges_into(totals, chunk)
        for part in chunk.instances:
            instance = part.instance_id
            before = instances.get(instance)
            all_masks = masks[instance] | (before.masks if before else frozenset())
            if len(all_masks) == 1:
                deltas = part.deltas
                if before is not None:  # against the instance's previous part
                    counted = metering.counter_deltas(
                        before.last.point(instance), part.first.point(instance)
                    )
                    deltas = tuple(a + b for a, b in zip(counted, deltas, strict=True))
                _add_counters(totals, deltas)
            if before is None:
                instances[instance] = FoldedInstance(
                    reports=part.reports,
                    last_reported_at=part.last_reported_at,
                    measured=part.measured,
                    masks=frozenset(all_masks),
                    first_day=chunk.day,
                    first=part.first,
                    last=part.last,
                )
            else:
                instances[instance] = replace(
                    before,
                    reports=before.reports + part.reports,
                    last_reported_at=max(before.last_reported_at, part.last_reported_at),
                    measured=before.measured | part.measured,
                    masks=frozenset(all_masks),
                    last=part.last,
                )
    return Folded(
        days=days,
        instances=instances,
        reports=(onto.reports if onto else 0) + sum(c.reports for c in chunks),
    )


def closed_window(
    *,
    customer: Customer,
    rolled: date | None,
    bounds: Sequence[tuple[int, int]],
    window_start: int,
    now: int,
) -> ClosedWindow:
    """The closed chunks `bounds` (the lead-in day's, if any, then the window's) put
    together, from one cache entry while current, else from `cached_chunks` (and cached).

    Reports are only ever inserted into raw days, and ids only grow: an entry is current
    while none of its span's reports is missing from it. Once *settled* (see _settled), a
    report can be missing only if the customer has a report newer than the entry's
    `newest_id`: while it has none, one probe of the customer's newest id is the check.
    Otherwise (a report came, anywhere: most are today's live ones) one COUNT over the
    span tells (as `cached_chunks` checks its chunks) and settles the entry again."""
    if not bounds:
        return ClosedWindow(span_reports=0, known={}, folded=Folded({}, {}, 0), settled=True)
    span_start, span_end = bounds[0][0], bounds[-1][1]
    key = window_key(customer, rolled, span_start, span_end)
    found = cache.get(key)  # read before checking: an entry is never newer than the check
    if found is not None:
        current = _current(customer, found, span_start, span_end)
        if current is not None:
            if current is not found:
                cache.set(key, current, timeout=PARTIAL_TTL)
            return current
    chunks = cached_chunks(customer=customer, rolled=rolled, bounds=bounds, now=now)
    folded = fold([c for c in chunks if c.start >= window_start])
    assert folded is not None  # noqa: S101 - folded onto nothing, never refused
    closed = ClosedWindow(
        span_reports=sum(c.reports for c in chunks),
        known={
            p.instance_id: p.last
            for c in chunks
            if c.start < window_start and c.end == window_start
            for p in c.instances
        },
        folded=folded,
    )
    # Unsettled if a report came while it was made: the next check counts (and rebuilds).
    closed = _settled(customer, closed, span_start, span_end, _newest_id(customer.pk)) or closed
    cache.set(key, closed, timeout=PARTIAL_TTL)
    return closed


def _current(
    customer: Customer, entry: ClosedWindow, span_start: int, span_end: int
) -> ClosedWindow | None:
    """`entry` if current, as it is or settled anew (a new value to cache); else None."""
    newest = _newest_id(customer.pk)
    if newest == entry.newest_id:
        if entry.settled:
            return entry
        if _still_running(entry.writers):  # before the COUNT
            return (
                entry if _span_count(customer, span_start, span_end) == entry.span_reports else None
            )
        return _settled(customer, entry, span_start, span_end, newest, writers=())
    return _settled(customer, entry, span_start, span_end, newest)


def _settled(
    customer: Customer,
    entry: ClosedWindow,
    span_start: int,
    span_end: int,
    newest: int,
    writers: tuple[str, ...] | None = None,
) -> ClosedWindow | None:
    """`entry` with `newest_id` = `newest` (the customer's newest id, read before this),
    if it misses none of the span's reports now; else None. Settled unless other
    transactions are writing reports (`writers`, read now unless given: none).

    Why that settles it: a report missing from the entry with an id up to `newest` was
    either visible when `newest` was read (it is counted now), or was being written then
    (its id drawn before `newest`'s, not committed yet): an INSERT takes its write lock
    before it draws ids and holds it to the end, so its transaction is one of `writers`
    or has committed (counted now). With no writer left, a COUNT that finds every report
    of the entry means that from now on only reports with a larger id can be missing."""
    if writers is None:
        writers = _writers()
    if _span_count(customer, span_start, span_end) != entry.span_reports:
        return None
    return replace(entry, newest_id=newest, writers=writers, settled=not writers)


def _span_count(customer: Customer, span_start: int, span_end: int) -> int:
    return _reports(customer.pk, span_start, span_end).count()


@functools.cache
def _newest_id_statement(vendor: str) -> str:
    opts = UsageReport._meta
    quote = connection.ops.quote_name
    table, id_, customer = (
        quote(opts.db_table),
        quote(opts.pk.column),
        quote(opts.get_field("customer").column),
    )
    return (
        f"SELECT {table}.{id_} FROM {table} WHERE {table}.{customer} = %s "  # noqa: S608 - _meta
        f"ORDER BY {table}.{id_} DESC LIMIT 1"
    )


def _newest_id(customer_pk: int) -> int:
    """The customer's newest report id (one probe at the end of each partition's
    (customer, id) index); 0 for none."""
    with prepared_cursor() as cursor:
        cursor.execute(_newest_id_statement(connection.vendor), [customer_pk])
        row = cursor.fetchone()
    return row[0] if row else 0


# The transactions other than this one holding a write lock on the reports table or one of
# its partitions: an INSERT takes it before it draws its ids and keeps it until it ends.
_WRITERS = """
    SELECT coalesce(array_agg(DISTINCT lock.virtualtransaction), '{}') FROM pg_locks AS lock
    WHERE lock.locktype = 'relation' AND lock.mode = 'RowExclusiveLock'
      AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND lock.pid IS DISTINCT FROM pg_backend_pid()
      AND lock.relation IN (
          SELECT to_regclass(%(table)s)
          UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%(table)s)
      )
"""
# Whether any of those transactions is still running (each holds its own virtual id).
_RUNNING = """
    SELECT EXISTS (
        SELECT 1 FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s)
    )
"""


def _writers() -> tuple[str, ...]:
    """The PostgreSQL transactions writing reports now. SQLite has one writer at a time,
    which draws ids above every committed one: none can commit a smaller id later."""
    if connection.vendor != "postgresql":
        return ()
    with connection.cursor() as cursor:
        cursor.execute(_WRITERS, {"table": UsageReport._meta.db_table})
        return tuple(sorted(cursor.fetchone()[0]))


def _still_running(writers: Sequence[str]) -> bool:
    if not writers:
        return False
    with connection.cursor() as cursor:
        cursor.execute(_RUNNING, [list(writers)])
        return bool(cursor.fetchone()[0])


def raw_window(
    *,
    customer: Customer,
    first_day: date,
    end_day: date,
    rolled: date | None,
    now: datetime,
    baselines,
    fallback,
) -> RawWindow:
    """Usage per day in [first_day, end_day) from raw reports, as `metering.daily_usage`
    computes it with `until=now`, plus what the history lists about the window's reports.

    `baselines(instances, before)` gives the instances' baselines before the window
    (selectors.raw_predecessors' points); `fallback(instance, baseline)` the day totals of
    one instance computed from its raw rows (for instances that change what they measure).
    """
    ws, we, until = metering.day_start(first_day), metering.day_start(end_day), int(now.timestamp())
    today = metering.day_start(metering.utc_day(until))
    closed_end = min(we, today + (until - today) // LIVE_STEP * LIVE_STEP)
    # The day before the window too (its last reports are the window's first baselines and
    # what holds gauges into it), unless it is rolled up: its kept reports never change.
    lead_in = ws - DAY
    if rolled is not None and lead_in < metering.day_start(rolled):
        lead_in = ws
    bounds = [(lo, min(lo + DAY, closed_end)) for lo in range(lead_in, closed_end, DAY)]
    closed = closed_window(
        customer=customer, rolled=rolled, bounds=bounds, window_start=ws, now=until
    )
    live_start = max(ws, closed_end)
    live = []
    if live_start < we:
        live = summarize(customer_pk=customer.pk, start=live_start, end=we, until=until)
    folded = fold(live, onto=closed.folded)
    if folded is None:  # an instance measures other counters in the live part
        chunks = cached_chunks(customer=customer, rolled=rolled, bounds=bounds, now=until)
        folded = fold([c for c in chunks if c.start >= ws] + live)
        assert folded is not None  # noqa: S101 - folded onto nothing, never refused
    return _finished(folded, closed.known, ws, baselines, fallback)


def _finished(folded: Folded, known: dict[str, Edge], ws: int, baselines, fallback) -> RawWindow:
    """The window's days with each instance's first delta against its baseline (the
    lead-in day's last report, else `baselines`), and the instances that change what they
    measure counted by `fallback`."""
    days = {day: replace(t) for day, t in folded.days.items()}
    needed = {
        instance
        for instance in folded.instances
        if instance not in known or known[instance].counters.count(None)
    }
    before = baselines(needed, datetime.fromtimestamp(ws, tz=UTC)) if needed else {}
    for instance, edge in known.items():
        if instance not in needed:
            before[instance] = edge.point(instance)
    for instance, state in folded.instances.items():
        if not state.uniform:  # measures different counters over the window: from raw rows
            for day, totals in fallback(instance, before.get(instance)).items():
                counted = [getattr(totals, name) for name in COUNTER_FIELDS]
                if any(counted):  # on a day with the instance's reports
                    _add_counters(days[day], counted)
            continue
        first = state.first.point(instance)
        _add_counters(days[state.first_day], metering.counter_deltas(before.get(instance), first))
    days = {
        day: t
        for day, t in days.items()
        if t.report_count or t.peak_active_devices or t.peak_total_devices or t.peak_storage_kb
    }
    instances = [
        InstanceWindow(
            instance_id=instance,
            reports=state.reports,
            last_reported_at=state.last_reported_at,
            measured=frozenset(
                name for i, name in enumerate(MEASURED_FIELDS) if state.measured >> i & 1
            ),
        )
        for instance, state in sorted(folded.instances.items())
    ]
    return RawWindow(days=days, instances=instances, reports=folded.reports)


def _add_counters(totals: metering.UsageTotals, deltas: Iterable[int]) -> None:
    for name, delta in zip(COUNTER_FIELDS, deltas, strict=True):
        setattr(totals, name, getattr(totals, name) + delta)
