"""Deployment jobs through real Celery workers on Redis, as in production.

Each worker is a `celery -A config worker` subprocess on this test's queue and database
(see conftest.py); the test signs up through the API, which enqueues on commit.
"""

import json
import os
import re
import signal

import pytest
from django_celery_results.models import TaskResult

from config.celery import app
from deployments import tasks
from deployments.models import Deployment
from tests.deployments.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(signup):
    """Sign up through the API (the job is published on commit); returns the record."""

    def _queued() -> Deployment:
        return Deployment.objects.get(customer__customer_id=signup().id)

    return _queued


def _when(deployment: Deployment, predicate) -> Deployment:
    """Poll the record until `predicate(record)` holds; return it."""

    def check():
        fresh = Deployment.objects.get(pk=deployment.pk)
        return fresh if predicate(fresh) else None

    return wait_for(check, timeout=30, what=f"{deployment.namespace} to reach the state")


def _result_when(task_id: str, state: str) -> TaskResult:
    """The stored result, once it has `state` (it is written just after the record)."""
    return wait_for(
        lambda: TaskResult.objects.filter(task_id=task_id, status=state).first(),
        what=f"result {state} of {task_id}",
    )


def test_signup_deploys_through_a_real_worker_on_redis(worker, queued):
    # given a worker
    worker(deploy_seconds=1.0)

    # when a customer signs up
    deployment = queued()

    # then the job runs on the worker, reporting progress on the record on its way
    seen: set[int] = set()

    def deployed(record: Deployment) -> bool:
        seen.add(record.progress)
        return record.status == "deployed"

    done = _when(deployment, deployed)
    assert (done.progress, done.attempts, done.last_error) == (100, 1, "")
    assert seen & {10, 25, 50, 80}
    result = _result_when(done.celery_task_id, "SUCCESS")
    assert result.task_name == "deployments.deployment_deploy_task"
    assert json.loads(result.result)["status"] == "deployed"


def test_injected_failure_retries_with_backoff_then_fails_and_an_admin_retry_succeeds(
    worker, queued, client, django_user_model
):
    # given a worker whose installs all fail
    broken = worker(faults={"*": "error"}, backoff_ms=100)

    # when a customer signs up
    deployment = queued()

    # then QUEUE_MAX_RETRY attempts, 0.1 s then 0.2 s apart, end failed with the error
    failed = _when(deployment, lambda record: record.status == "failed")
    assert failed.attempts == 3
    assert failed.last_error.startswith("Simulated failure installing release c")
    countdowns = re.findall(
        rf"\[{failed.celery_task_id}\] retry: Retry in ([0-9.]+)s", broken.log_text()
    )
    assert countdowns == ["0.1", "0.2"]
    _result_when(failed.celery_task_id, "FAILURE")

    # when the cause is fixed and staff retry it from the admin
    broken.stop()
    worker()
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "x"))
    client.post(
        "/admin/deployments/deployment/",
        {"action": "retry_failed", "_selected_action": [failed.pk]},
    )

    # then it is deployed by a new job
    done = _when(deployment, lambda record: record.status == "deployed")
    assert done.attempts == 1
    assert done.celery_task_id != failed.celery_task_id
    _result_when(done.celery_task_id, "SUCCESS")


def test_worker_child_killed_mid_job_is_redone_and_completes_once(worker, queued):
    # given a job half-way on a worker, its progress visible as Celery task state too
    running = worker(deploy_seconds=2.0)
    deployment = queued()
    task_id = _when(
        deployment, lambda r: r.status == "deploying" and r.progress >= 10
    ).celery_task_id
    state = wait_for(
        lambda: app.AsyncResult(task_id).state == "PROGRESS" and app.AsyncResult(task_id)
    )
    assert state.info["progress"] >= 10

    # when the pool process running it is killed (as the OOM killer would)
    os.kill(running.active_pids()[task_id], signal.SIGKILL)

    # then the broker delivers it again (acks_late + reject_on_worker_lost) and it completes once
    done = _when(deployment, lambda record: record.status == "deployed")
    assert done.attempts == 2
    assert done.celery_task_id == task_id
    _result_when(task_id, "SUCCESS")
    assert running.log_text().count(f"[{task_id}] succeeded") == 1


def test_job_that_keeps_killing_its_worker_ends_failed(worker, queued):
    # given a job that kills the pool process running it, every time
    worker(faults={"*": "crash"})

    # when it is enqueued
    deployment = queued()

    # then the attempt cap on the record ends the redeliveries
    failed = _when(deployment, lambda record: record.status == "failed")
    assert failed.attempts == 3
    assert failed.last_error.startswith("Gave up after 3 attempts")
    _result_when(failed.celery_task_id, "FAILURE")


def test_job_of_a_lost_worker_is_restarted_by_the_sweep_on_a_new_worker(worker, queued, settings):
    # given a job half-way on a worker
    first = worker(deploy_seconds=2.0)
    deployment = queued()
    lost_task_id = _when(deployment, lambda r: r.progress >= 25).celery_task_id

    # when the whole worker is lost (its message stays unacknowledged in Redis for an hour)
    first.kill()
    worker()

    # then the sweep finds the run silent and restarts the job, which the new worker completes
    settings.DEPLOYMENT_RUNNING_STALE_SECONDS = 1
    wait_for(lambda: tasks.deployment_sweep_task()["restarted"], timeout=10, what="the sweep")
    done = _when(deployment, lambda record: record.status == "deployed")
    assert done.attempts == 2
    assert done.celery_task_id != lost_task_id


def test_queue_stats_match_the_jobs_created(worker, signup, staff_client, settings):
    settings.QUEUE_STATS_INSPECT_TIMEOUT = 0.3

    def stats() -> dict:
        response = staff_client.get("/api/queue/stats")
        assert response.status_code == 200, response.content
        return response.json()

    # given three signups and no worker yet: three jobs wait in Redis
    customers = [signup().id for _ in range(3)]
    assert stats() == {"waiting": 3, "active": 0, "completed": 0, "failed": 0, "delayed": 0}

    # when a worker takes them, the third failing once more than it may
    failing = Deployment.objects.get(customer__customer_id=customers[2]).namespace
    worker(deploy_seconds=1.0, faults={failing: "error"}, max_retry=2, backoff_ms=1500)

    # then the stats follow: one at a time active, the retry delayed, and at the end 2 + 1
    wait_for(lambda: stats()["active"] == 1, what="an active job")
    wait_for(lambda: stats()["delayed"] == 1, what="a delayed retry")
    final = wait_for(
        lambda: (current := stats())["completed"] + current["failed"] == 3 and current,
        what="all jobs to finish",
    )
    assert final == {"waiting": 0, "active": 0, "completed": 2, "failed": 1, "delayed": 0}
    statuses = sorted(Deployment.objects.values_list("status", flat=True))
    assert statuses == ["deployed", "deployed", "failed"]
