"""Fixtures of the deployment tests: instant simulation, real workers on Redis, a fake cluster.

Real workers (`worker` fixture) are `celery -A config worker` subprocesses. They use:
- Redis: REDIS_URL when set (CI), else a redis-server this session starts on a free port,
  so a bare machine runs the same tests instead of skipping them; with neither the tests
  fail saying what to install;
- the test database pytest-django made (tests/deployments/worker_settings.py points the
  worker at it), so these tests use `transactional_db`: the worker sees committed rows;
- a queue of their own, so leftovers of other tests and a developer's worker stay apart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from config.celery import app
from tests.deployments.support import (
    Worker,
    celery_publishing_to,
    forget_queue,
    free_port,
    wait_for,
)

# chart_helpers asserts: let pytest rewrite it, so its failures show the compared values.
# This conftest is imported before the test_chart_* modules, so before chart_helpers is.
pytest.register_assert_rewrite("tests.deployments.chart_helpers")

ROOT = Path(__file__).resolve().parents[2]


def _test_database_on_disk() -> None:
    """A worker process cannot open an in-memory SQLite database: use a file for tests.

    Mutates the one settings dict the connection uses, before the test database exists.
    """
    database = django_settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        test = database.setdefault("TEST", {})
        if not test.get("NAME") or "memory" in str(test["NAME"]):
            test["NAME"] = str(Path(tempfile.gettempdir()) / f"billing-test-{os.getpid()}.sqlite3")


_test_database_on_disk()


@pytest.fixture(autouse=True)
def _jobs_in_process():
    """Jobs run where they are enqueued, even with REDIS_URL set; `broker` turns this off."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fast_jobs(settings):
    """Jobs take no time and retry at once unless a test says otherwise."""
    settings.SIMULATED_DEPLOY_SECONDS = 0
    settings.SIMULATED_DEPLOY_FAULTS = {}
    settings.QUEUE_MAX_RETRY = 3
    settings.QUEUE_BACKOFF_DELAY_MS = 10


# ---------------------------------------------------------------- Redis and the Celery app


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if django_settings.REDIS_URL:
        yield django_settings.REDIS_URL
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "The worker tests need Redis: set REDIS_URL, or install redis-server "
            "(apt-get install redis-server) and they start their own."
        )
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _redis_answers(url), timeout=10, what="redis-server to start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class Broker:
    url: str
    queue: str


@pytest.fixture
def broker(redis_url) -> Iterator[Broker]:
    """This test's jobs go to Redis, on a queue of their own."""
    queue = f"billing-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with celery_publishing_to(redis_url, queue):
        yield Broker(url=redis_url, queue=queue)
    forget_queue(redis_url, queue)


# ---------------------------------------------------------------- real workers


@pytest.fixture
def worker(transactional_db, broker, settings, tmp_path) -> Iterator[Callable[..., Worker]]:
    """Start real Celery workers on this test's queue and database; stops them after."""
    from django.core.cache import cache
    from django.db import connection

    started: list[Worker] = []

    def start(
        *,
        deploy_seconds: float = 0.5,
        faults: dict | None = None,
        max_retry: int = 3,
        backoff_ms: int = 50,
    ) -> Worker:
        name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.deployments.worker_settings",
            "REDIS_URL": broker.url,
            "CACHE_KEY_PREFIX": cache.key_prefix,
            "LICENSE_PRIVATE_KEY_PATH": str(settings.LICENSE_PRIVATE_KEY_PATH),
            "LICENSE_PUBLIC_KEY_PATH": str(settings.LICENSE_PUBLIC_KEY_PATH),
            "SIMULATE_K8S_DEPLOYMENT": "true",
            "TEST_WORKER_DATABASE_NAME": str(connection.settings_dict["NAME"]),
            "TEST_WORKER_QUEUE": broker.queue,
            "TEST_WORKER_DEPLOY_SECONDS": str(deploy_seconds),
            "TEST_WORKER_FAULTS": json.dumps(faults or {}),
            "TEST_WORKER_MAX_RETRY": str(max_retry),
            "TEST_WORKER_BACKOFF_MS": str(backoff_ms),
        }
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        log = tmp_path / f"{name}.log"
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--queues", broker.queue, "--hostname", name, "--concurrency", "1",
            "--pool", "prefork", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole
            )  # fmt: skip
        started_worker = Worker(process=process, name=name, log=log)
        started.append(started_worker)
        started_worker.wait_ready()
        return started_worker

    yield start
    for started_worker in started:
        started_worker.stop()


# ---------------------------------------------------------------- the emulated cluster


@pytest.fixture
def cluster(tmp_path, settings, monkeypatch):
    """The real backend against kmock's emulator; helm is tests/deployments/fake_helm.py."""
    try:
        import kmock  # noqa: F401
    except ImportError as exc:  # a missing dev dependency: say so, never skip
        pytest.fail(f"kmock is missing: pip install -r requirements-dev.txt ({exc})")
    from tests.deployments.emulator import Emulator, patch_kmock

    patch_kmock(monkeypatch)
    helm = tmp_path / "helm"
    helm.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = 'helm'\n"
                    f"runpy.run_path({str(ROOT / 'tests/deployments/fake_helm.py')!r}, "
                    "run_name='__main__')\n")  # fmt: skip
    helm.chmod(0o755)
    helm_log = tmp_path / "helm-calls.jsonl"
    helm_log.touch()
    monkeypatch.setenv("FAKE_HELM_LOG", str(helm_log))
    with Emulator(tmp_path) as emulator:
        settings.SIMULATE_K8S_DEPLOYMENT = False
        settings.KUBECONFIG = str(emulator.kubeconfig)
        settings.HELM_BINARY = str(helm)
        settings.HELM_TIMEOUT_SECONDS = 60
        settings.DEPLOY_READY_TIMEOUT_SECONDS = 0.5
        settings.K8S_POLL_SECONDS = 0.05
        emulator.helm_calls = lambda: [
            json.loads(line) for line in helm_log.read_text().splitlines()
        ]
        yield emulator
