"""A worker keeps consuming after PostgreSQL restarts (issue: the worker's main process kept
its dead connection, each superseded job's result write failed in a pool callback before the
acknowledgement, and after one such message per pool slot the worker consumed nothing).

Everything here runs against a PostgreSQL of the test's own (tests/private_postgres.py),
restarted by the test, with a real `celery worker` and real Redis: the machine's database is
never touched, and the test runs the same on a SQLite suite run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.deployments.support import Worker, forget_queue, wait_for
from tests.private_postgres import private_postgres

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 2


@pytest.fixture
def stack(redis_url, tmp_path, settings):
    """A private PostgreSQL (migrated), a queue on Redis, and the environment of both the
    worker and the driver commands that act as the web app."""
    queue = f"billing-dbrestart-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with private_postgres() as database:
        env = {
            **os.environ,
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "tests.deployments.worker_settings",
            "DATABASE_URL": database.url,
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": f"billing-dbrestart-{uuid.uuid4().hex[:8]}",
            "LICENSE_PRIVATE_KEY_PATH": str(settings.LICENSE_PRIVATE_KEY_PATH),
            "LICENSE_PUBLIC_KEY_PATH": str(settings.LICENSE_PUBLIC_KEY_PATH),
            "SIMULATE_K8S_DEPLOYMENT": "true",
            "STRIPE_SECRET_KEY": "",
            "TEST_WORKER_DATABASE_NAME": "billing",
            "TEST_WORKER_QUEUE": queue,
            "TEST_WORKER_DEPLOY_SECONDS": "0.2",
            "TEST_WORKER_MAX_RETRY": "3",
            "TEST_WORKER_BACKOFF_MS": "50",
        }
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        yield database, env, queue
        forget_queue(redis_url, queue)


def _start_worker(env: dict, queue: str, log: Path) -> Worker:
    name = f"dbrestart-{uuid.uuid4().hex[:8]}@localhost"
    argv = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", queue,
        "--hostname", name, "--concurrency", str(CONCURRENCY), "--pool", "prefork",
        "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    worker = Worker(process=process, name=name, log=log)
    worker.wait_ready()
    return worker


def _drive(env: dict, code: str) -> str:
    """Run `code` as the web app would (same settings, publishing to the worker's queue)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


SIGN_UP_AND_DUPLICATE = """
import uuid
from deployments.tasks import deployment_deploy_task
from lifecycle.signup import customer_signup
for n in range({count}):
    result = customer_signup(email=f"restart-{{uuid.uuid4().hex[:8]}}@example.com")
    # a superseded copy of the job (as when paying right after signup redeploys): the worker
    # rejects it, and its main process records that failure before acknowledging it
    deployment_deploy_task.apply_async(args=[result.deployment.pk], task_id=str(uuid.uuid4()))
"""


def _unacked(redis_url: str, queue: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for payload in client.hvals("unacked") if json.loads(payload)[2] == queue)
    finally:
        client.close()


def _statuses(database) -> list[str]:
    return [row[0] for row in database.query("SELECT status FROM deployments_deployment")]


def test_worker_keeps_consuming_after_postgresql_restarts(stack, redis_url, tmp_path):
    database, env, queue = stack
    worker = _start_worker(env, queue, tmp_path / "worker.log")
    try:
        # given a worker whose main process holds a database connection (it recorded the
        # rejection of one superseded job)
        _drive(env, SIGN_UP_AND_DUPLICATE.format(count=1))
        wait_for(lambda: _statuses(database) == ["deployed"], timeout=30, what="first deploy")
        wait_for(
            lambda: (
                database.query(
                    "SELECT count(*) FROM django_celery_results_taskresult WHERE status = 'FAILURE'"
                )[0][0]
                == 1
            ),
            timeout=30,
            what="the rejected duplicate's result",
        )

        # when PostgreSQL restarts, and more customers sign up, each with a superseded copy
        database.restart()
        count = 2 * CONCURRENCY  # more than the pool has slots
        _drive(env, SIGN_UP_AND_DUPLICATE.format(count=count))

        # then every job runs and every message is acknowledged
        wait_for(
            lambda: _statuses(database).count("deployed") == 1 + count,
            timeout=60,
            what=lambda: f"all deployed: {_statuses(database)}\n{worker.log_text()[-3000:]}",
        )
        wait_for(
            lambda: _unacked(redis_url, queue) == 0,
            timeout=30,
            what=lambda: f"no unacknowledged messages\n{worker.log_text()[-3000:]}",
        )
        results = database.query(
            "SELECT status, count(*) FROM django_celery_results_taskresult GROUP BY status"
        )
        assert dict(results) == {"SUCCESS": 1 + count, "FAILURE": 1 + count}
    finally:
        worker.stop()
        time.sleep(0.1)
