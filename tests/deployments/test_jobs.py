"""Deployment jobs run in-process (no broker): the record's state machine and its guards."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from django_celery_results.models import TaskResult

from core.errors import ApplicationError
from customers.models import Customer
from deployments import runs, services, tasks
from deployments.models import Deployment
from licensing.services import license_revoke
from tests.deployments.support import celery_publishing_to, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_up(signup, django_capture_on_commit_callbacks):
    """Sign up through the API and run what it enqueued on commit; returns the record."""

    def _signed_up(**overrides) -> Deployment:
        with django_capture_on_commit_callbacks(execute=True):
            customer = signup(**overrides)
        return Deployment.objects.get(customer__customer_id=customer.id)

    return _signed_up


def _age(deployment: Deployment, seconds: float) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_signup_deployment_reaches_deployed_in_process(signed_up):
    # when
    deployment = signed_up()

    # then
    assert deployment.status == Deployment.Status.DEPLOYED
    assert (deployment.progress, deployment.attempts, deployment.last_error) == (100, 1, "")
    assert deployment.started_at <= deployment.finished_at
    assert deployment.namespace == deployment.customer.namespace
    assert deployment.celery_task_id


def test_deployment_queue_enqueues_only_after_commit(signup):
    # given a signup whose transaction's on-commit callbacks never run (test transaction)
    customer = signup()

    # then the record is there, queued, and no job ran
    deployment = Deployment.objects.get(customer__customer_id=customer.id)
    assert (deployment.status, deployment.attempts) == (Deployment.Status.QUEUED, 0)


def test_deployment_deploy_task_retries_then_fails_with_its_error(signed_up, settings):
    # given every install fails
    settings.SIMULATED_DEPLOY_FAULTS = {"*": "error"}

    # when
    deployment = signed_up()

    # then QUEUE_MAX_RETRY attempts (in-process, without waiting: the backoff through the
    # broker is in test_worker.py), then failed with the error of the last one
    assert deployment.status == Deployment.Status.FAILED
    assert deployment.attempts == 3
    assert deployment.last_error.startswith("Simulated failure installing release c")
    assert deployment.finished_at is not None


def test_admin_retry_of_a_failed_deployment_succeeds(
    signed_up, settings, client, django_user_model, django_capture_on_commit_callbacks
):
    # given a deployment that failed, and a fixed cause
    settings.SIMULATED_DEPLOY_FAULTS = {"*": "error"}
    failed = signed_up()
    settings.SIMULATED_DEPLOY_FAULTS = {}
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "x"))

    # when staff retry it from the admin
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/deployments/deployment/",
            {"action": "retry_failed", "_selected_action": [failed.pk]},
            follow=True,
        )

    # then it runs again with fresh attempts and is deployed
    assert "Retrying: " + failed.namespace in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_error) == ("deployed", 1, "")


def test_admin_retry_leaves_deployments_that_did_not_fail_alone(
    signed_up, client, django_user_model
):
    deployed = signed_up()
    task_id = deployed.celery_task_id
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "x"))

    response = client.post(
        "/admin/deployments/deployment/",
        {"action": "retry_failed", "_selected_action": [deployed.pk]},
        follow=True,
    )

    assert "Not failed, left alone: " + deployed.namespace in response.content.decode()
    deployed.refresh_from_db()
    assert (deployed.status, deployed.celery_task_id) == ("deployed", task_id)
    with pytest.raises(ApplicationError) as refused:
        services.deployment_retry(deployment=deployed)
    assert refused.value.status_code == 409


def test_admin_lists_status_progress_and_links_to_flower(
    signed_up, client, django_user_model, settings
):
    settings.FLOWER_URL = "https://flower.example.net/admin/queues/"
    deployment = signed_up()
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "x"))

    page = client.get("/admin/deployments/deployment/").content.decode()

    assert 'href="https://flower.example.net/admin/queues"' in page
    assert (
        f'href="https://flower.example.net/admin/queues/task/{deployment.celery_task_id}"' in page
    )
    assert '<progress value="100" max="100"' in page
    assert client.get(f"/admin/deployments/deployment/{deployment.pk}/change/").status_code == 200


def test_deployment_deploy_task_run_twice_changes_nothing(signed_up):
    # given a finished job
    deployment = signed_up()
    before = Deployment.objects.values().get(pk=deployment.pk)

    # when its message is delivered again
    result = tasks.deployment_deploy_task.apply(
        args=[deployment.pk], task_id=deployment.celery_task_id
    )

    # then the run is rejected and the record is as it was
    assert result.state == "REJECTED"
    assert Deployment.objects.values().get(pk=deployment.pk) == before


def test_duplicate_message_is_ignored_while_a_run_is_live_but_a_redelivery_takes_over(
    signup,
):
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    Deployment.objects.filter(pk=deployment.pk).update(status="deploying", attempts=1)

    # a second copy of the message, while the first run is alive (fresh heartbeat)
    with pytest.raises(runs.JobNotOwned):
        runs.deployment_deploy_run(
            deployment_id=deployment.pk, task_id=deployment.celery_task_id, in_process=True
        )
    # the broker's redelivery after the run's worker died
    done = runs.deployment_deploy_run(
        deployment_id=deployment.pk,
        task_id=deployment.celery_task_id,
        redelivered=True,
        in_process=True,
    )
    assert (done.status, done.attempts) == ("deployed", 2)


def test_job_that_keeps_dying_ends_failed_by_the_attempt_cap_on_the_record(signup):
    # given runs that died without reporting until the cap was used up
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    Deployment.objects.filter(pk=deployment.pk).update(status="deploying", attempts=3)

    # when the broker delivers the message once more
    with pytest.raises(runs.JobFailed):
        runs.deployment_deploy_run(
            deployment_id=deployment.pk,
            task_id=deployment.celery_task_id,
            redelivered=True,
            in_process=True,
        )

    deployment.refresh_from_db()
    assert (deployment.status, deployment.attempts) == ("failed", 3)
    assert deployment.last_error.startswith("Gave up after 3 attempts")


def test_superseded_run_stops_and_leaves_the_new_job_in_charge(
    signup, django_capture_on_commit_callbacks
):
    # given a run in progress
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    old_task_id = deployment.celery_task_id

    def redeploy_meanwhile(percent, step):
        if percent == 25:
            services.deployment_redeploy(customer=deployment.customer)

    # when a redeploy comes in while it runs
    with pytest.raises(runs.JobNotOwned):
        runs.deployment_deploy_run(
            deployment_id=deployment.pk,
            task_id=old_task_id,
            in_process=True,
            on_progress=redeploy_meanwhile,
        )

    # then the old run stopped and the new job owns the record, and runs to the end
    deployment.refresh_from_db()
    assert deployment.status == "queued"
    assert deployment.celery_task_id != old_task_id
    done = runs.deployment_deploy_run(
        deployment_id=deployment.pk, task_id=deployment.celery_task_id, in_process=True
    )
    assert (done.status, done.attempts) == ("deployed", 1)


def test_deployment_redeploy_reinstalls_with_a_new_job(
    signed_up, django_capture_on_commit_callbacks
):
    deployment = signed_up()
    first_task_id = deployment.celery_task_id

    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_redeploy(customer=deployment.customer)

    deployment.refresh_from_db()
    assert deployment.status == "deployed"
    assert deployment.celery_task_id != first_task_id
    assert deployment.attempts == 1


def test_revoked_license_fails_the_deploy_without_retrying(
    signed_up, django_capture_on_commit_callbacks
):
    deployment = signed_up()
    license_revoke(customer=deployment.customer, reason="fraud", actor="test")

    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_redeploy(customer=deployment.customer)

    deployment.refresh_from_db()
    assert (deployment.status, deployment.attempts) == ("failed", 1)
    assert "revoked" in deployment.last_error


def test_deployment_schedule_delete_deletes_the_instance_once(
    signed_up, django_capture_on_commit_callbacks
):
    deployment = signed_up()

    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_schedule_delete(customer=deployment.customer)
    deployment.refresh_from_db()
    assert (deployment.status, deployment.operation, deployment.progress) == (
        "deleted",
        "delete",
        100,
    )

    # deleting again is a no-op; a deleted instance may be deployed again (reactivation)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.deployment_schedule_delete(customer=deployment.customer)
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=True):
        services.deployment_redeploy(customer=deployment.customer)
    deployment.refresh_from_db()
    assert (deployment.status, deployment.operation) == ("deployed", "deploy")


def test_deployment_redeploy_is_refused_while_deleting(signup):
    customer = Customer.objects.get(customer_id=signup().id)
    services.deployment_schedule_delete(customer=customer)

    with pytest.raises(ApplicationError) as refused:
        services.deployment_redeploy(customer=customer)

    assert refused.value.status_code == 409


def test_deployment_delete_now_deletes_and_retires_queued_jobs(signup):
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    queued_task_id = deployment.celery_task_id

    services.deployment_delete_now(namespace=deployment.namespace)

    deployment.refresh_from_db()
    assert (deployment.status, deployment.operation) == ("deleted", "delete")
    result = tasks.deployment_deploy_task.apply(args=[deployment.pk], task_id=queued_task_id)
    assert result.state == "REJECTED"


def test_sweep_republishes_a_job_whose_enqueue_was_lost(signup, django_capture_on_commit_callbacks):
    # given two queued records whose publish never happened, one of them for a while
    lost = Deployment.objects.get(customer__customer_id=signup().id)
    recent = Deployment.objects.get(customer__customer_id=signup().id)
    _age(lost, runs.queued_stale_after().total_seconds() + 5)

    # when the sweep runs
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.deployment_sweep_task()

    # then the old one is published again, with its own task id, and runs
    assert result == {"republished": 1, "restarted": 0}
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert (lost.status, recent.status) == ("deployed", "queued")


def test_sweep_restarts_a_run_that_stopped_reporting_under_a_new_task_id(
    signup, django_capture_on_commit_callbacks
):
    # given a run whose worker vanished: deploying, no heartbeat since long
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    dead_task_id = deployment.celery_task_id
    Deployment.objects.filter(pk=deployment.pk).update(status="deploying", attempts=1)
    _age(deployment, runs.running_stale_after().total_seconds() + 5)

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.deployment_sweep_task()

    assert result == {"republished": 0, "restarted": 1}
    deployment.refresh_from_db()
    assert (deployment.status, deployment.attempts) == ("deployed", 2)
    # the dead run's message, if the broker ever brings it back, changes nothing
    late = tasks.deployment_deploy_task.apply(args=[deployment.pk], task_id=dead_task_id)
    assert late.state == "REJECTED"


def test_signup_succeeds_while_the_broker_is_down_and_the_sweep_catches_up(
    signup, django_capture_on_commit_callbacks
):
    # given Redis cannot be reached when the signup commits
    with (
        celery_publishing_to(f"redis://127.0.0.1:{free_port()}/0", "billing-test-down"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        customer = signup()

    # then the signup answered 201 and the record waits, queued: it is the outbox
    deployment = Deployment.objects.get(customer__customer_id=customer.id)
    assert deployment.status == "queued"

    # when the sweep runs once the broker is back (here: tasks in-process)
    _age(deployment, runs.queued_stale_after().total_seconds() + 5)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deployment_sweep_task()
    deployment.refresh_from_db()
    assert deployment.status == "deployed"


def test_queue_stats_is_staff_only(api_client, staff_client, signup):
    customer = signup()

    assert api_client.get("/api/queue/stats").status_code == 401
    assert customer.client.get("/api/queue/stats").status_code == 403
    assert staff_client.get("/api/queue/stats").status_code == 200


def test_queue_stats_in_process_count_stored_results_of_deployment_jobs(staff_client):
    # given results as the result backend stores them, and one of another task
    for task_id, name, state in [
        ("a", "deployments.deployment_deploy_task", "SUCCESS"),
        ("b", "deployments.deployment_deploy_task", "SUCCESS"),
        ("c", "deployments.deployment_delete_task", "SUCCESS"),
        ("d", "deployments.deployment_deploy_task", "FAILURE"),
        ("e", "deployments.deployment_deploy_task", "PROGRESS"),
        ("f", "subscriptions.customer_stripe_sync_task", "FAILURE"),
    ]:
        TaskResult.objects.create(task_id=task_id, task_name=name, status=state)

    stats = staff_client.get("/api/queue/stats").json()

    # then, with no broker, nothing waits, runs or is delayed
    assert stats == {"waiting": 0, "active": 0, "completed": 3, "failed": 1, "delayed": 0}


def test_queue_stats_answer_503_when_the_broker_cannot_be_reached(staff_client):
    with celery_publishing_to(f"redis://127.0.0.1:{free_port()}/0", "billing-test-down"):
        response = staff_client.get("/api/queue/stats")

    assert response.status_code == 503
    assert response.json()["error"] == "Queue unavailable"


def test_a_progress_update_that_cannot_be_published_does_not_fail_the_job(signup):
    # given a queued job whose Celery progress (state and event) cannot reach Redis
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    Deployment.objects.filter(pk=deployment.pk).update(status="queued", attempts=0)
    published: list[int] = []

    def broker_away(percent: int, step: str) -> None:
        published.append(percent)
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    # when the run reports its progress
    done = runs.deployment_deploy_run(
        deployment_id=deployment.pk,
        task_id=deployment.celery_task_id,
        in_process=True,
        on_progress=broker_away,
    )

    # then every step was tried, the record kept its progress, and the job finished
    assert len(published) >= 3
    assert (done.status, done.progress, done.attempts, done.last_error) == ("deployed", 100, 1, "")


def test_a_failed_attempt_records_when_its_retry_is_due(signup, settings):
    settings.SIMULATED_DEPLOY_FAULTS = {"*": "error"}
    settings.QUEUE_BACKOFF_DELAY_MS = 5000
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    Deployment.objects.filter(pk=deployment.pk).update(status="queued", attempts=0)

    before = timezone.now()
    with pytest.raises(runs.JobWillRetry):
        runs.deployment_deploy_run(
            deployment_id=deployment.pk, task_id=deployment.celery_task_id, in_process=True
        )

    deployment.refresh_from_db()
    assert deployment.status == "queued"
    # first retry after QUEUE_BACKOFF_DELAY (5 s)
    assert timedelta(seconds=4) < deployment.retry_at - before < timedelta(seconds=6)


def _lost_retry(signup, *, due_seconds_ago: float, backoff_seconds: float) -> Deployment:
    """A record whose attempt failed `backoff_seconds` before its retry was due; the delayed
    retry message is gone (Redis lost it in a blip)."""
    deployment = Deployment.objects.get(customer__customer_id=signup().id)
    due = timezone.now() - timedelta(seconds=due_seconds_ago)
    Deployment.objects.filter(pk=deployment.pk).update(
        status="queued",
        attempts=1,
        updated_at=due - timedelta(seconds=backoff_seconds),
        retry_at=due,
    )
    deployment.refresh_from_db()
    return deployment


def test_sweep_picks_up_a_lost_retry_within_a_minute_of_its_due_time(
    signup, django_capture_on_commit_callbacks, settings
):
    assert runs.queued_stale_after() == timedelta(seconds=60)  # the default
    # (before, a lost retry waited ~6 minutes: five after its failure, plus the backoff floor)
    lost = _lost_retry(signup, due_seconds_ago=61, backoff_seconds=5)

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.deployment_sweep_task()

    assert result == {"republished": 1, "restarted": 0}
    lost.refresh_from_db()
    assert (lost.status, lost.attempts, lost.retry_at) == ("deployed", 2, None)


def test_sweep_leaves_a_retry_that_waits_out_its_backoff(
    signup, django_capture_on_commit_callbacks
):
    # a long backoff: its record has not changed for an hour, and its retry is due soon
    waiting = _lost_retry(signup, due_seconds_ago=-30, backoff_seconds=3600)

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.deployment_sweep_task()

    assert result == {"republished": 0, "restarted": 0}
    waiting.refresh_from_db()
    assert waiting.status == "queued"


def test_queue_stats_count_in_process_jobs_in_the_embedded_mode(
    staff_client, signup, django_capture_on_commit_callbacks, monkeypatch
):
    # given the embedded mode (CELERY_TASK_STORE_EAGER_RESULT, checked below): in-process
    # tasks keep their results. Celery reads it once into each task class, so this test sets
    # it there, as the embedded mode's settings do at start-up.
    for task in (tasks.deployment_deploy_task, tasks.deployment_delete_task):
        monkeypatch.setattr(task, "store_eager_result", True)
    with django_capture_on_commit_callbacks(execute=True):
        first = signup()
    with django_capture_on_commit_callbacks(execute=True):
        signup()

    stats = staff_client.get("/api/queue/stats").json()

    assert stats["completed"] == 2
    assert first.id


@pytest.mark.django_db(transaction=True)
def test_signup_answers_with_the_deployments_state_after_its_in_process_job(signup):
    # real commits: the in-process job runs when the signup commits, before the answer
    customer = signup()
    assert customer.body["deployment"]["status"] == "deployed"


def test_the_embedded_mode_stores_in_process_results():
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += (
        "print(s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_TASK_STORE_EAGER_RESULT, s.CELERY_BROKER_URL)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["True", "True", "memory://localhost/"]
    # an in-process task no longer warns about a broker without a host name
    assert "No hostname was supplied" not in result.stderr
