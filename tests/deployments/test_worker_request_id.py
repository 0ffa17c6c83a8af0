"""The request id follows a request into the Celery tasks it enqueues: the worker's log lines
of a signup's deployment job carry the id the signup's response returned."""

from __future__ import annotations

import json

import pytest

from deployments.models import Deployment
from tests.deployments.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # Celery's start-up banner is not a log line
    return lines


def test_signup_request_id_reaches_the_deploy_job_on_the_worker(api_client, worker, monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    started = worker(deploy_seconds=0.2)

    response = api_client.post(
        "/api/customers/signup",
        {"email": "rid@example.com", "company_name": "R", "full_name": "R", "password": "x" * 12},
        format="json",
    )
    assert response.status_code == 201
    request_id = response["X-Request-ID"]
    customer_id = response.json()["customer"]["customer_id"]
    wait_for(
        lambda: Deployment.objects.get(customer__customer_id=customer_id).status == "deployed",
        timeout=30,
        what="the deploy job",
    )

    def task_lines() -> list[dict]:
        return [
            line for line in _json_lines(started.log_text()) if line.get("request_id") == request_id
        ]

    def finished_lines() -> list[dict]:
        lines = task_lines()
        return lines if any(line["event"] == "task_succeeded" for line in lines) else []

    lines = wait_for(finished_lines, timeout=10, what=lambda: started.log_text()[-2000:])
    events = {line["event"] for line in lines}
    assert {"task_started", "task_succeeded"} <= events
    assert all(line.get("task_id") for line in lines if line["event"] == "task_started")
