"""HTTP benchmarks of the hot paths, each beside a baseline measured in the same run.

    .venv/bin/python bench/run.py FIGURE [--seconds 15] [--warmup 5] [...]

FIGURE is one of:
  public-key    GET /api/licenses/public-key (no database): the framework baseline
  report        single POST /api/usage/report, beside public-key
  license       GET /api/licenses/:id with the customer's key, beside public-key
  batch         POST /api/usage/report/batch (--size reports, 4 senders), beside a raw
                psycopg multi-row insert of the same rows into the same table (4 connections)
  history       GET /api/usage/:id?days=30 and /consumption over --rows report rows of
                1,000 customers (one with a month of 5-minute reports from 10 instances)
  webhook       (not built yet) signed Stripe webhooks, 10 % duplicates, effects once
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
    """`rows` report rows over the customers with generate_series (one statement per
    customer group): the first customer gets a month of 5-minute reports from 10
    instances (86,400 rows, or all rows if fewer), the rest share what is left."""
    from django.db import connection

    from usage.models import UsageReport

    UsageReport.objects.filter(customer_id__in=[c["pk"] for c in customers]).delete()
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


def fig_history(args, server, customers, rows: int | None = None) -> None:
    rows = rows or args.rows
    started = time.monotonic()
    heavy, total = seed_usage(customers, rows)
    print(
        f"seeded {rows:,} report rows in {time.monotonic() - started:.0f} s "
        f"(table now {total:,} rows; heaviest customer {min(rows, 86400):,})",
        flush=True,
    )
    for name, suffix, target in (
        ("history ?days=30", "?days=30", 50),
        ("consumption", "/consumption", 100),
    ):
        paths = Path(harness.write_keys_file([]))
        paths.write_text(f"/api/usage/{heavy['id']}{suffix} {heavy['key']}\n")
        result = harness.measure(
            server.url,
            "get.lua",
            warmup=args.warmup,
            seconds=args.seconds,
            variables={"PATHS": paths},
        )
        harness.print_figure(f"{name} ({rows:,} rows)", result, rows=rows, target_p95_ms=target)


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
            sys.exit("webhook: not built yet (see README, Performance: what is not done)")
        elif args.figure == "growth":
            for size in (100, 500, 1000):
                fig_batch(args, server, env, customers[:50], size=size)
            for rows in (int(r) for r in args.rows_list.split(",")):
                fig_history(args, server, customers, rows=rows)


if __name__ == "__main__":
    main()
