"""Benchmark of usage ingestion: single reports and batches. Bounded; stops by itself.

Default: the Django test client against a throw-away test database (SQLite, or
PostgreSQL when DATABASE_URL is set), with the usage rate limit lifted:

    .venv/bin/python bench/ingest.py [--single 500] [--batches 20] [--batch-size 500]

Against a running dev server instead (start it with RATE_LIMIT_USAGE=1000000/h):

    .venv/bin/python bench/ingest.py --url http://127.0.0.1:3100 --api-key ik_... \\
        --customer-id cust_...

Prints requests/s and p50/p95 latency for single reports, and reports/s for batches.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report(customer_id: str, instance_id: str, at: datetime, n: int) -> dict:
    return {
        "customer_id": customer_id,
        "instance_id": instance_id,
        "report_id": str(uuid.uuid4()),
        "reported_at": at.isoformat(),
        "active_devices": 40 + n % 5,
        "total_devices": 45,
        "mqtt_messages_published": 150_000 + 100 * n,
        "mqtt_messages_received": 120_000 + 80 * n,
        "mqtt_bytes_sent": 1_500_000 + 1000 * n,
        "mqtt_bytes_received": 1_200_000 + 800 * n,
        "http_requests": 5000 + 10 * n,
        "http_bytes_sent": 500_000 + 100 * n,
        "http_bytes_received": 300_000 + 60 * n,
        "postgres_size_mb": 125.5,
        "postgres_row_count": 500_000 + n,
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run(post: Callable[[str, dict], int], customer_id: str, args) -> None:
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=30)
    tag = uuid.uuid4().hex[:8]  # fresh instance ids: a rerun never collides with old rows

    latencies = []
    began = time.perf_counter()
    for n in range(args.single):
        body = report(customer_id, f"bench-{tag}-single", start + timedelta(seconds=n), n)
        t0 = time.perf_counter()
        status = post("/api/usage/report", body)
        latencies.append(time.perf_counter() - t0)
        if status != 201:
            sys.exit(f"single report answered {status}")
    single_seconds = time.perf_counter() - began

    batch_times = []
    for b in range(args.batches):
        reports = [
            report(customer_id, f"bench-{tag}-batch-{b}", start + timedelta(seconds=n), n)
            for n in range(args.batch_size)
        ]
        t0 = time.perf_counter()
        status = post("/api/usage/report/batch", {"reports": reports})
        batch_times.append(time.perf_counter() - t0)
        if status != 200:
            sys.exit(f"batch answered {status}")

    ms = 1000
    print(f"single reports: {args.single} in {single_seconds:.2f} s")
    print(f"  {args.single / single_seconds:,.0f} requests/s")
    print(
        f"  latency p50 {percentile(latencies, 50) * ms:.2f} ms, "
        f"p95 {percentile(latencies, 95) * ms:.2f} ms, max {max(latencies) * ms:.2f} ms"
    )
    total = args.batches * args.batch_size
    batch_seconds = sum(batch_times)
    print(f"batches: {args.batches} x {args.batch_size} reports in {batch_seconds:.2f} s")
    print(f"  {total / batch_seconds:,.0f} reports/s")
    print(
        f"  per batch p50 {statistics.median(batch_times) * ms:.1f} ms, "
        f"p95 {percentile(batch_times, 95) * ms:.1f} ms"
    )


def live(args) -> None:
    def post(path: str, body: dict) -> int:
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own server
            args.url.rstrip("/") + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": args.api_key},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    run(post, args.customer_id, args)


def in_process(args) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")  # development settings on a throwaway test database
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import override_settings, setup_test_environment
    from rest_framework.test import APIClient

    from customers.credentials import api_key_issue
    from customers.models import Customer

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    print(f"database: {connection.vendor} ({database})")
    try:
        with override_settings(
            RATE_LIMIT_USAGE="100000000/h",
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        ):
            customer = Customer.objects.create(email="bench@example.com")
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=api_key_issue(customer=customer).raw_key)

            def post(path: str, body: dict) -> int:
                return client.post(path, body, format="json").status_code

            run(post, customer.customer_id, args)
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=500, help="single reports (default 500)")
    parser.add_argument("--batches", type=int, default=20, help="batches (default 20)")
    parser.add_argument("--batch-size", type=int, default=500, help="reports per batch (≤ 500)")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3100")
    parser.add_argument("--api-key", help="customer API key (with --url)")
    parser.add_argument("--customer-id", help="that key's customer id (with --url)")
    args = parser.parse_args()
    if not (1 <= args.single <= 100_000 and 1 <= args.batches <= 1000):
        parser.error("--single 1..100000, --batches 1..1000")
    if not 1 <= args.batch_size <= 500:
        parser.error("--batch-size 1..500")
    if args.url:
        if not (args.api_key and args.customer_id):
            parser.error("--url needs --api-key and --customer-id")
        live(args)
    else:
        in_process(args)


if __name__ == "__main__":
    main()
