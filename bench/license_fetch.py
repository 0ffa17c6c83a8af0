"""Benchmark: license fetch, the hot path of every customer instance.

Measures `GET /api/licenses/:id` with the customer's API key through the full Django stack
(in-process test client): the first fetch after a change (signs an RS256 JWT and writes a
history row) against the cached fetch (no signing, no write). Uses DATABASE_URL / REDIS_URL
when set, else SQLite and the in-memory cache. Bounded: N customers x R requests, then stops.

    .venv/bin/python bench/license_fetch.py [--customers 50] [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")  # development settings on a throwaway test database


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _report(name: str, seconds: list[float]) -> None:
    total = sum(seconds)
    print(
        f"{name:<28} n={len(seconds):>5}  {len(seconds) / total:8.1f} req/s  "
        f"p50 {statistics.median(seconds) * 1000:7.2f} ms  "
        f"p95 {_percentile(seconds, 95) * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="cached fetches per customer")
    args = parser.parse_args()

    keys = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    os.environ["LICENSE_PRIVATE_KEY_PATH"] = str(keys / "private-key.pem")
    os.environ["LICENSE_PUBLIC_KEY_PATH"] = str(keys / "public-key.pem")
    os.environ["STRIPE_SIMULATOR"] = "false"
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases
    from rest_framework.test import APIClient

    from licensing import signing

    settings.RATE_LIMIT_CUSTOMER = "1000000/h"
    settings.RATE_LIMIT_PUBLIC = "1000000/h"
    signing.write_key_pair(
        Path(settings.LICENSE_PRIVATE_KEY_PATH), Path(settings.LICENSE_PUBLIC_KEY_PATH)
    )
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        anonymous = APIClient()
        customers = []
        for index in range(args.customers):
            response = anonymous.post(
                "/api/customers/signup",
                {
                    "email": f"bench{index}-{time.time_ns()}@example.com",
                    "company_name": "Bench",
                    "full_name": "Bench",
                    "password": "SecurePass123",
                },
                format="json",
            )
            body = response.json()
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=body["api_key"])
            customers.append((body["customer"]["customer_id"], client))

        from django.core.cache import cache

        cache.clear()
        signing_times, cached_times = [], []
        for customer_id, client in customers:
            started = time.perf_counter()
            assert client.get(f"/api/licenses/{customer_id}").status_code == 200
            signing_times.append(time.perf_counter() - started)
        for _ in range(args.requests):
            for customer_id, client in customers:
                started = time.perf_counter()
                assert client.get(f"/api/licenses/{customer_id}").status_code == 200
                cached_times.append(time.perf_counter() - started)
        print(
            f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
            f"cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}"
        )
        _report("license fetch (signs)", signing_times)
        _report("license fetch (cached)", cached_times)
    finally:
        teardown_databases(databases, verbosity=0)


if __name__ == "__main__":
    main()
