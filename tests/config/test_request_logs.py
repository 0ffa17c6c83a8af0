"""Structured logs: each request's log lines carry its request id, which the response returns
as X-Request-ID; production writes one JSON object a line."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log_lines():
    """The root logger's lines, through the production (json) formatter of the settings."""
    config = django_settings.LOGGING["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        config["()"](processors=config["processors"], foreign_pre_chain=config["foreign_pre_chain"])
    )
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_every_response_carries_a_request_id(api_client):
    first = api_client.get("/health/live")["X-Request-ID"]
    second = api_client.get("/health/live")["X-Request-ID"]
    assert uuid.UUID(first).version == 4
    assert uuid.UUID(second).version == 4
    assert first != second


def test_a_requests_log_lines_carry_its_request_id(api_client, json_log_lines):
    response = api_client.post("/api/customers/signup", {"email": "x"}, format="json")
    request_id = response["X-Request-ID"]

    lines = [line for line in json_log_lines() if line.get("request_id") == request_id]
    events = {line["event"] for line in lines}
    assert {"request_started", "request_finished"} <= events
    finished = next(line for line in lines if line["event"] == "request_finished")
    assert finished["code"] == 400
    assert finished["level"] == "warning"  # a 4xx
    assert finished["logger"] == "django_structlog.middlewares.request"
    assert finished["timestamp"].endswith("Z")


def test_a_client_cannot_choose_the_request_id(api_client):
    response = api_client.get("/health/live", HTTP_X_REQUEST_ID="attacker-chosen")
    assert response["X-Request-ID"] != "attacker-chosen"


def test_production_logs_are_json_lines_and_development_logs_readable():
    code = (
        "import django; django.setup(); import logging; "
        "logging.getLogger('billing.check').warning('hello %s', 'world')"
    )
    base = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}

    def run(**variables: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**base, "DJANGO_SETTINGS_MODULE": "tests.settings", **variables},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stderr.strip().splitlines()[-1]

    line = json.loads(run(LOG_FORMAT="json"))
    assert (line["event"], line["level"], line["logger"]) == (
        "hello world",
        "warning",
        "billing.check",
    )
    readable = run()  # development (DEBUG=true in the test settings): console
    assert "hello world" in readable
    assert not readable.startswith("{")
