"""HTTP benchmarks of the hot paths, each beside a baseline measured in the same run.

    .venv/bin/python bench/run.py FIGURE [--seconds 15] [--warmup 5] [...]

FIGURE is one of:
  public-key    GET /api/licenses/public-key (no database): the framework baseline
  report        single POST /api/usage/report, beside public-key
  license       GET /api/licenses/:id with the customer's key, beside public-key
  batch         POST /api/usage/report/batch (--size reports, 4 senders), beside a raw
                psycopg multi-row insert of the same rows into the same table (4 connections)
  history       GET /api/usage/:id?days=30 and /consumption over --rows report rows of
                1,000 customers (one with a month of 5-minute reports from 10 instances),
                at 32 connections and at one per server worker, beside public-key; and one
                request in-process: the SQL summaries (cold and cached) beside the plain
                Python computation over the same rows
  webhook       POST /api/webhooks/stripe: Stripe-signed events, 10 % redeliveries, beside
                public-key; checks every effect happened once (an event row per id, one
                audit row per handled event)
  growth        batch at 100/500/1000 a request; history at 100k/1M/5M rows (--rows-list)

Starts the Dockerfile's gunicorn command on its own PostgreSQL database and Redis db
(BENCH_DATABASE_URL, default .../billing_bench; BENCH_REDIS_URL, default redis db 7), with
the rate limits raised; wrk (installed from Debian if missing) drives 32 connections on
loopback. Prints one line per figure and a JSON line each. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def fig_public_key(args, server) -> dict:
    result = harness.measure(server.url, "public_key.lua", warmup=args.warmup, seconds=args.seconds)
    return harness.print_figure("public-key (baseline)", result)


def _with_baseline(args, server, name: str, script: str, **kwargs) -> None:
    base = fig_public_key(args, server)
    result = harness.measure(server.url, script, warmup=args.warmup, seconds=args.seconds, **kwargs)
    harness.print_figure(name, result, baseline=("public-key", base["rate"]))


def fig_report(args, server, customers) -> None:
    variables = {"CUSTOMERS": harness.write_keys_file(customers)}
    _with_baseline(args, server, "single usage report", "report.lua", variables=variables)


def fig_license(args, server, customers) -> None:
    import urllib.request

    for c in customers:  # sign each license once: the figure is the unchanged-license fetch
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{server.url}/api/licenses/{c['id']}", headers={"X-API-Key": c["key"]}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200
    variables = {"CUSTOMERS": harness.write_keys_file(customers)}
    _with_baseline(args, server, "license fetch (customer key)", "license.lua", variables=variables)


# --------------------------------------------------------------------------- batch


def _raw_rows(customer_pk: int, size: int, batch: int, tag: str):
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=30)
    received = datetime.now(tz=UTC).replace(microsecond=0)
    instance = f"raw-{tag}-{batch}"
    for n in range(1, size + 1):
        yield (
            customer_pk, instance, uuid.uuid4(), start + timedelta(seconds=n), received, None,
            40 + n % 5, 45, 150_000 + 100 * n, 120_000 + 80 * n, 1_500_000 + 1000 * n,
            1_200_000 + 800 * n, 5000 + 10 * n, 500_000 + 100 * n, 300_000 + 60 * n,
            "125.500", 500_000 + n,
        )  # fmt: skip


RAW_COLUMNS = (
    "customer_id, instance_id, report_id, reported_at, received_at, started_at, "
    "active_devices, total_devices, mqtt_messages_published, mqtt_messages_received, "
    "mqtt_bytes_sent, mqtt_bytes_received, http_requests, http_bytes_sent, "
    "http_bytes_received, postgres_size_mb, postgres_row_count"
)


def _raw_sender(database_url: str, customer_pk: int, size: int, seconds: float, queue) -> None:
    import psycopg

    tag = uuid.uuid4().hex[:10]
    values = "(" + ", ".join(["%s"] * 17) + ")"
    sql = (
        f"INSERT INTO usage_usagereport ({RAW_COLUMNS}) VALUES "  # noqa: S608 - constants
        + ", ".join([values] * size)
        + " ON CONFLICT DO NOTHING RETURNING instance_id, reported_at"
    )
    rows = batches = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < deadline:
            params = [v for row in _raw_rows(customer_pk, size, batches, tag) for v in row]
            rows += len(conn.execute(sql, params, prepare=False).fetchall())
            batches += 1
        queue.put((rows, time.monotonic() - started))


def raw_insert(env, customer_pk: int, size: int, seconds: float, senders: int = 4) -> float:
    """Rows/s of a raw psycopg multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING (the
    statement the service sends) over `senders` connections, each its own process."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    url = env.database_url
    procs = [
        multiprocessing.Process(target=_raw_sender, args=(url, customer_pk, size, seconds, queue))
        for _ in range(senders)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(rows / elapsed for rows, elapsed in results)


def fig_batch(args, server, env, customers, size: int | None = None) -> None:
    size = size or args.size
    raw_seconds = max(3.0, args.seconds / 2)
    raw_insert(env, customers[0]["pk"], size, 2.0)  # warm-up
    raw = raw_insert(env, customers[0]["pk"], size, raw_seconds)
    print(f"raw psycopg insert, {size} rows x 4 connections: {raw:,.0f} rows/s", flush=True)
    print(json.dumps({"figure": f"raw insert {size}", "rate": round(raw, 1), "unit": "rows/s"}))
    result = harness.measure(
        server.url,
        "batch.lua",
        warmup=args.warmup,
        seconds=args.seconds,
        connections=4,
        threads=2,
        variables={"CUSTOMERS": harness.write_keys_file(customers), "BATCH_SIZE": size},
        units_per_request=size,
    )
    harness.print_figure(
        f"batch {size} reports x 4 senders", result, unit="reports/s", baseline=("raw", raw)
    )


# --------------------------------------------------------------------------- history


def seed_usage(customers: list[dict], rows: int) -> tuple[dict, int]:
    """`rows` report rows (the table emptied first) over the customers with generate_series
    (one statement per customer group): the first customer gets a month of 5-minute reports from 10
    instances (86,400 rows, or all rows if fewer), the rest share what is left."""
    from django.db import connection

    from usage.models import UsageReport

    with connection.cursor() as cursor:  # the bench's own database: start from no reports
        cursor.execute(f"TRUNCATE {UsageReport._meta.db_table}")
    heavy, others = customers[0], customers[1:]
    month = min(rows, 10 * 30 * 288)
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    insert = f"""
        INSERT INTO usage_usagereport ({RAW_COLUMNS})
        SELECT c.pk, 'i-' || (g %% %(instances)s), NULL,
               %(now)s - (g / %(instances)s) * interval '1 second' * %(step)s,
               %(now)s, NULL,
               40 + g %% 5, 45,
               %(top)s - g, %(top)s - g, %(top)s - 1000 * g, %(top)s - 800 * g,
               %(top)s - g, %(top)s - 100 * g, %(top)s - 60 * g, 125.5, 500000
        FROM unnest(%(pks)s::bigint[]) AS c(pk), generate_series(0, %(per)s - 1) AS g
    """  # noqa: S608 - constant column list
    top = 10**12
    with connection.cursor() as cursor:
        cursor.execute(
            insert,
            {
                "instances": 10,
                "now": now,
                "step": 300,
                "top": top,
                "pks": [heavy["pk"]],
                "per": month,
            },
        )
        rest = rows - month
        if rest > 0 and others:
            per = max(1, rest // len(others))
            step = max(1, (30 * 86400) // max(1, per // 2))
            cursor.execute(
                insert,
                {
                    "instances": 2,
                    "now": now,
                    "step": step,
                    "top": top,
                    "pks": [c["pk"] for c in others],
                    "per": per,
                },
            )
        cursor.execute("ANALYZE usage_usagereport")
        cursor.execute("SELECT count(*) FROM usage_usagereport")
        total = cursor.fetchone()[0]
    return heavy, total


def _in_process(heavy: dict) -> dict:
    """One request's selector alone, in this process (ms): the plain Python computation over
    the raw rows (the code before the summaries), the SQL summaries with an empty cache, and
    cached (median of 5)."""
    from statistics import median

    from django.core.cache import cache

    from customers.models import Customer
    from usage import metering, selectors

    customer = Customer.objects.select_related("subscription").get(pk=heavy["pk"])
    today = datetime.now(tz=UTC).date()
    period = metering.billing_period(subscription=customer.subscription, at=datetime.now(tz=UTC))
    windows = {
        "history": (today - timedelta(days=29), today + timedelta(days=1)),
        "consumption": (period.first_day, period.end_day),
    }
    figures = {}
    for name, (first, end) in windows.items():

        def timed(function, first=first, end=end) -> float:
            started = time.perf_counter()
            function(customer=customer, first_day=first, end_day=end)
            return (time.perf_counter() - started) * 1000

        plain = timed(selectors.usage_days_from_raw_rows)
        cache.clear()
        cold = timed(selectors.usage_days)
        warm = median(timed(selectors.usage_days) for _ in range(5))
        figures[name] = {"plain_ms": plain, "cold_ms": cold, "cached_ms": warm}
        print(
            f"{name + ' in-process, one request':<34} plain Python {plain:8.1f} ms   "
            f"SQL summaries: cold {cold:7.1f} ms, cached {warm:6.1f} ms "
            f"= {plain / warm:,.0f}x faster",
            flush=True,
        )
    print(json.dumps({"figure": f"in-process {heavy['id']}", **figures}), flush=True)
    return figures


def fig_history(args, server, customers, rows: int | None = None) -> None:
    rows = rows or args.rows
    started = time.monotonic()
    heavy, total = seed_usage(customers, rows)
    print(
        f"seeded {rows:,} report rows in {time.monotonic() - started:.0f} s "
        f"(table now {total:,} rows; heaviest customer {min(rows, 86400):,})",
        flush=True,
    )
    _in_process(heavy)
    base = fig_public_key(args, server)
    workers = _server_workers(server)
    for name, suffix, target in (
        ("history ?days=30", "?days=30", 50),
        ("consumption", "/consumption", 100),
    ):
        paths = Path(harness.write_keys_file([]))
        paths.write_text(f"/api/usage/{heavy['id']}{suffix} {heavy['key']}\n")
        for connections in (32, workers):
            result = harness.measure(
                server.url,
                "get.lua",
                warmup=args.warmup,
                seconds=args.seconds,
                connections=connections,
                threads=min(2, connections),
                variables={"PATHS": paths},
            )
            harness.print_figure(
                f"{name} ({rows:,} rows, {connections} conn)",
                result,
                baseline=("public-key", base["rate"]),
                rows=rows,
                connections=connections,
                target_p95_ms=target,
            )


def _server_workers(server) -> int:
    """The server's worker processes (gunicorn --workers), for a run at one connection each."""
    command = server.command
    for flag in ("--workers", "-w"):
        if flag in command:
            return int(command[command.index(flag) + 1])
    return 1


# --------------------------------------------------------------------------- webhook

# Dispatched to its handler, which finds the bench customer; naming no subscription, it changes
# nothing, so it ends `ignored` with no audit row (a handler that changes state calls Stripe,
# which the bench server has none of).
HANDLED_TYPE = "invoice.payment_failed"
IGNORED_TYPE = "payment_intent.created"  # stored and answered, no handler


def _signed_events(customers: list[dict], count: int, tag: str, seed: int) -> tuple[Path, dict]:
    """`count` Stripe-signed deliveries ("signature<TAB>body" a line) for wrk, half of a type
    the app applies and half one it ignores; about 10 % redeliver an earlier event of the
    same wrk thread (lines of one thread are 2 apart) with its original signature."""
    import random

    sys.path.insert(0, str(harness.ROOT))
    from stripe_simulator.webhooks import sign_payload

    rng = random.Random(seed)  # noqa: S311 - load generation, not security
    created = int(time.time())
    lines: list[str] = []
    unique = 0
    for n in range(count):
        if n >= 20 and rng.random() < 0.10:
            lines.append(lines[n - 2 * rng.randint(1, min(500, n // 2))])
            continue
        customer = customers[n % len(customers)]
        kind = HANDLED_TYPE if n % 2 else IGNORED_TYPE
        if kind == HANDLED_TYPE:
            metadata = {"customer_id": customer["id"]}
            obj = {"id": f"in_{tag}_{n}", "object": "invoice", "metadata": metadata}
        else:
            obj = {"id": f"pi_{tag}_{n}", "object": "payment_intent", "amount": 2900}
        event = {
            "id": f"evt_{tag}_{n}",
            "object": "event",
            "type": kind,
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
        payload = json.dumps(event, separators=(",", ":"))
        lines.append(f"{sign_payload(payload, harness.WEBHOOK_SECRET)}\t{payload}")
        unique += 1
    path = Path(harness.write_keys_file([]))
    path.write_text("\n".join(lines) + "\n")
    return path, {"deliveries": count, "unique": unique}


def _webhook_effects(tag: str) -> dict:
    """What the run left: event rows of this run, their states, and audit rows per event."""
    from django.db.models import Count

    from customers.models import AuditLog
    from subscriptions.models import StripeEvent

    events = StripeEvent.objects.filter(stripe_event_id__startswith=f"evt_{tag}_")
    states = dict(events.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    handled = events.filter(type=HANDLED_TYPE).count()
    audits = AuditLog.objects.filter(actor__startswith=f"stripe:evt_{tag}_")
    per_event = audits.values("actor").annotate(n=Count("id"))
    return {
        "event_rows": events.count(),
        "states": states,
        "handled_rows": handled,
        "processed_rows": states.get("processed", 0),
        "max_attempts": max(events.values_list("attempts", flat=True), default=0),
        "audit_rows": audits.count(),
        "audit_rows_max_per_event": max((row["n"] for row in per_event), default=0),
    }


def fig_webhook(args, server, customers) -> None:
    base = fig_public_key(args, server)
    threads = 2
    run_tag = uuid.uuid4().hex[:8]
    # Enough lines that no thread runs out at 1,500 deliveries/s (the run is refused if one does).
    per_second = 1500
    warm, _ = _signed_events(customers, int(per_second * args.warmup) + 100, f"w{run_tag}", 1)
    measured, planned = _signed_events(
        customers, int(per_second * args.seconds) + 100, f"m{run_tag}", 2
    )
    variables = {"THREADS": threads}
    if args.warmup > 0:
        harness.wrk(
            server.url,
            "webhook.lua",
            seconds=args.warmup,
            threads=threads,
            variables={**variables, "EVENTS": warm},
        )
    result = harness.wrk(
        server.url,
        "webhook.lua",
        seconds=args.seconds,
        threads=threads,
        variables={**variables, "EVENTS": measured},
    )
    time.sleep(2)  # let the deliveries in flight when wrk stopped finish
    counts = result.counts or {}
    if result.errors or counts.get("wrapped"):
        sys.exit(
            f"webhook: {result.errors} failed requests, wrapped={counts.get('wrapped')}; refused"
        )
    effects = _webhook_effects(f"m{run_tag}")
    duplicates = counts.get("duplicates", 0)
    first_answers = result.requests - duplicates
    # Deliveries still in flight when wrk stopped may have been stored unanswered (at most
    # one per connection); every stored event was handled once (one attempt), processed or
    # ignored, none failed, and only a processed one wrote an audit row, exactly one.
    in_flight = effects["event_rows"] - first_answers
    once = (
        0 <= in_flight <= 32
        and set(effects["states"]) <= {"processed", "ignored"}
        and effects["max_attempts"] == 1
        and effects["audit_rows"] == effects["processed_rows"]
        and effects["audit_rows_max_per_event"] <= 1
    )
    harness.print_figure(
        "webhook (10 % redeliveries)",
        result,
        unit="events/s",
        baseline=("public-key", base["rate"]),
        duplicates_answered=duplicates,
        duplicate_share=round(duplicates / max(1, result.requests), 3),
        unique_per_second=round(first_answers / result.seconds, 1),
        effects=effects,
        planned=planned,
        effects_once=once,
    )
    print(
        f"  {duplicates:,} of {result.requests:,} answered as redeliveries "
        f"({duplicates / max(1, result.requests):.1%}); {effects['event_rows']:,} event rows, "
        f"{effects['handled_rows']:,} dispatched to a handler, {effects['processed_rows']:,} "
        f"processed with {effects['audit_rows']:,} audit rows "
        f"(at most {effects['audit_rows_max_per_event']} per event): "
        f"effects once: {'yes' if once else 'NO'}",
        flush=True,
    )
    if not once:
        sys.exit("webhook: an effect was not counted exactly once")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "figure",
        choices=["public-key", "report", "license", "batch", "history", "webhook", "growth"],
    )
    parser.add_argument("--seconds", type=float, default=15, help="measured time per figure")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up time per figure")
    parser.add_argument("--customers", type=int, default=200, help="customers (keys) in turn")
    parser.add_argument("--size", type=int, default=500, help="reports per batch")
    parser.add_argument("--rows", type=int, default=1_000_000, help="report rows for history")
    parser.add_argument(
        "--rows-list", default="100000,1000000,5000000", help="growth: history row counts"
    )
    parser.add_argument(
        "--server-args", help="gunicorn options instead of the Dockerfile's (measuring them)"
    )
    args = parser.parse_args()
    if not (1 <= args.seconds <= 120 and 0 <= args.warmup <= 60):
        parser.error("--seconds 1..120, --warmup 0..60")

    harness.ensure_wrk()
    extra = {"USAGE_MAX_BATCH_REPORTS": "1000"} if args.figure in ("batch", "growth") else {}
    env = harness.prepare(extra)
    count = 1000 if args.figure in ("history", "growth") else args.customers
    customers = harness.seed_customers(count)
    server_args = args.server_args.split() if args.server_args else None
    print(
        f"# bench {args.figure} {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with harness.Server(env, args=server_args) as server:
        if args.figure == "public-key":
            fig_public_key(args, server)
        elif args.figure == "report":
            fig_report(args, server, customers[:200])
        elif args.figure == "license":
            fig_license(args, server, customers[:200])
        elif args.figure == "batch":
            fig_batch(args, server, env, customers[:50])
        elif args.figure == "history":
            fig_history(args, server, customers)
        elif args.figure == "webhook":
            fig_webhook(args, server, customers[:200])
        elif args.figure == "growth":
            for size in (100, 500, 1000):
                fig_batch(args, server, env, customers[:50], size=size)
            for rows in (int(r) for r in args.rows_list.split(",")):
                fig_history(args, server, customers, rows=rows)


if __name__ == "__main__":
    main()
