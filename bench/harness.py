"""What every HTTP benchmark shares: a database and Redis of its own, the production server
as the Dockerfile starts it, seeded customers, and wrk on loopback.

Nothing here is a test: figures are printed, never asserted. Every load is bounded in time
and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/billing_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
ADMIN_TOKEN = "bench-admin-token-" + "x" * 24  # noqa: S105 - a throwaway server's token
WEBHOOK_SECRET = "whsec_bench_local"  # noqa: S105
SECRET_KEY = "bench-only-" + os.urandom(32).hex()  # a throwaway server's key
# Limits raised for the run (the throttles still run; they just never refuse).
RAISED_LIMITS = {
    "RATE_LIMIT_PUBLIC": "1000000000/h",
    "RATE_LIMIT_VERIFICATION": "1000000000/h",
    "RATE_LIMIT_USAGE": "1000000000/h",
    "RATE_LIMIT_CUSTOMER": "1000000000/h",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    """wrk from Debian; installed with apt-get if missing (the machine's package source)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: installing Debian's package")
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        apt.insert(0, "sudo")
    if subprocess.run(apt, check=False).returncode != 0:  # noqa: S603 - fixed apt command
        subprocess.run([*apt[:-4], "update", "-q"], check=False)  # noqa: S603
        subprocess.run(apt, check=True)  # noqa: S603
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dockerfile_gunicorn() -> list[str]:
    """The Dockerfile's CMD (the production server), as an argument list."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*?\])\s*$", text.replace("\\\n", ""), re.M | re.S)
    if not match:
        sys.exit("no CMD [...] in the Dockerfile")
    return json.loads(match.group(1))


@dataclass
class Environment:
    """The settings both the server and the seeding code run with."""

    database_url: str
    redis_url: str
    keys: Path
    extra: dict

    def variables(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": SECRET_KEY,
            "ADMIN_API_TOKEN": ADMIN_TOKEN,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "LICENSE_PRIVATE_KEY_PATH": str(self.keys / "private-key.pem"),
            "LICENSE_PUBLIC_KEY_PATH": str(self.keys / "public-key.pem"),
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOG_LEVEL": "WARNING",
            **RAISED_LIMITS,
            **self.extra,
        }


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare(extra: dict | None = None) -> Environment:
    """Database (created if missing, migrated), Redis db flushed, a key pair; Django set up
    in this process with the server's settings, for seeding."""
    env = Environment(
        database_url=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        keys=Path(tempfile.mkdtemp(prefix="bench-keys-")),
        extra=extra or {},
    )
    _ensure_database(env.database_url)
    sys.path.insert(0, str(ROOT))
    from licensing.signing import write_key_pair

    write_key_pair(env.keys / "private-key.pem", env.keys / "public-key.pem")
    os.environ.update(env.variables())
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    cache.clear()
    return env


def seed_customers(count: int, *, plan: str = "starter", status: str = "active") -> list[dict]:
    """`count` customers with a subscription and an API key each (bulk, no Stripe)."""
    from datetime import timedelta

    from django.utils import timezone

    from customers.credentials import api_key_issue
    from customers.models import Customer
    from subscriptions.models import Subscription

    tag = f"{time.time_ns():x}"
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [
            Customer(email=f"bench-{tag}-{n}@example.com", company_name=f"Bench {n}")
            for n in range(count)
        ]
    )
    customers = list(Customer.objects.filter(email__startswith=f"bench-{tag}-"))
    Subscription.objects.bulk_create(
        [
            Subscription(
                customer=customer,
                plan=plan,
                status=status,
                current_period_start=now - timedelta(days=10),
                current_period_end=now + timedelta(days=20),
            )
            for customer in customers
        ]
    )
    return [
        {"id": c.customer_id, "pk": c.pk, "key": api_key_issue(customer=c).raw_key}
        for c in customers
    ]


class Server:
    """The Dockerfile's gunicorn command, bound to a free loopback port."""

    def __init__(self, env: Environment, *, args: list[str] | None = None) -> None:
        command = dockerfile_gunicorn()
        if args is not None:  # a different server configuration, for measuring it
            command = [command[0], "config.wsgi:application", *args]
        for index, value in enumerate(command):
            if value == "--bind":
                command[index + 1] = "127.0.0.1:{port}"
        self.port = _free_port()
        self.command = [
            str(Path(PYTHON).parent / "gunicorn") if c == "gunicorn" else c.format(port=self.port)
            for c in command
        ]
        self.env = {**os.environ, **env.variables()}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        # Open while the server runs; its path is printed when the server fails.
        self.log = open(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1], "wb")  # noqa: SIM115

    def __enter__(self) -> Server:
        log(f"server: {' '.join(self.command[1:])}")
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited; see {self.log.name}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=2) as response,  # noqa: S310
            ):
                if response.status == 200:
                    return self
            time.sleep(0.3)
        self.__exit__(None, None, None)
        sys.exit(f"gunicorn did not answer /health in 60 s; see {self.log.name}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Result:
    """One wrk run: requests, errors and latency percentiles (ms)."""

    requests: int
    seconds: float
    errors: int  # socket errors plus non-2xx/3xx answers
    p50: float
    p95: float
    p99: float
    units_per_request: int = 1
    counts: dict | None = None  # what the script counted besides (e.g. duplicate answers)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def units_rate(self) -> float:
        return self.rate * self.units_per_request


def wrk(
    url: str,
    script: str,
    *,
    seconds: float,
    connections: int = 32,
    threads: int = 2,
    variables: dict | None = None,
    units_per_request: int = 1,
) -> Result:
    """Run bench/lua/<script> against `url` for `seconds`; parse its JSON summary line."""
    binary = ensure_wrk()
    env = {**os.environ, **{k: str(v) for k, v in (variables or {}).items()}}
    command = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "lua" / script),
        url,
    ]
    completed = subprocess.run(  # noqa: S603 - wrk with our own arguments, loopback only
        command, cwd=BENCH / "lua", env=env, capture_output=True, text=True, check=False
    )
    line = next(
        (x for x in completed.stdout.splitlines() if x.startswith('{"wrk"')),
        None,
    )
    if completed.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line)["wrk"]
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        p50=data["p50_us"] / 1000,
        p95=data["p95_us"] / 1000,
        p99=data["p99_us"] / 1000,
        units_per_request=units_per_request,
        counts={k: v for k, v in data.items() if not k.endswith("_us") and k != "requests"},
    )


def measure(
    url: str, script: str, *, warmup: float, seconds: float, check: bool = True, **kwargs
) -> Result:
    """Warm up, then measure; refuses a run in which any request failed."""
    if warmup > 0:
        wrk(url, script, seconds=warmup, **kwargs)
    result = wrk(url, script, seconds=seconds, **kwargs)
    if check and result.errors:
        sys.exit(f"{script}: {result.errors} of {result.requests} requests failed")
    return result


def write_keys_file(customers: list[dict]) -> Path:
    """One `customer_id key` per line, for the Lua scripts."""
    path = Path(tempfile.mkstemp(prefix="bench-customers-", suffix=".txt")[1])
    path.write_text("".join(f"{c['id']} {c['key']}\n" for c in customers))
    return path


def print_figure(name: str, result: Result, *, unit: str = "req/s", baseline=None, **extra):
    """One human line, then one JSON line."""
    line = (
        f"{name:<34} {result.units_rate:>10,.0f} {unit:<10} p50 {result.p50:6.1f} ms  "
        f"p95 {result.p95:6.1f} ms  p99 {result.p99:6.1f} ms"
    )
    figure = {
        "figure": name,
        "rate": round(result.units_rate, 1),
        "unit": unit,
        "requests": result.requests,
        "seconds": round(result.seconds, 2),
        "p50_ms": round(result.p50, 2),
        "p95_ms": round(result.p95, 2),
        "p99_ms": round(result.p99, 2),
    }
    if baseline is not None:
        base_name, base_rate = baseline
        ratio = result.units_rate / base_rate
        line += f"  = {ratio:.2f}x {base_name} ({base_rate:,.0f})"
        figure.update(baseline=base_name, baseline_rate=round(base_rate, 1), ratio=round(ratio, 3))
    figure.update(extra)
    print(line, flush=True)
    print(json.dumps(figure), flush=True)
    return figure
