"""Errors reach a person: with SENTRY_DSN set, an unhandled error is sent to Sentry (here a
local HTTP server that reads what the Sentry SDK sends); without it, nothing is sent."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RAISE_IN_A_VIEW = """
import django
django.setup()
import sentry_sdk
from django.test import Client
from django.test.utils import override_settings
from django.urls import path

def broken(request):
    raise RuntimeError("boom from a view")

urlpatterns = [path("broken", broken)]
with override_settings(ROOT_URLCONF=__name__, DEBUG_PROPAGATE_EXCEPTIONS=False):
    response = Client(raise_request_exception=False).get("/broken")
print(response.status_code, sentry_sdk.get_client().is_active())
sentry_sdk.flush(timeout=5)
"""


@pytest.fixture
def sentry_server():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            for line in body.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                received.append(item)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_port}/1", received
    server.shutdown()
    server.server_close()


def _run(code: str, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **variables}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unhandled_error_is_reported_to_sentry(sentry_server):
    dsn, received = sentry_server
    result = _run(RAISE_IN_A_VIEW, SENTRY_DSN=dsn, SENTRY_ENVIRONMENT="ci")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["500", "True"]
    events = [item for item in received if "exception" in item]
    assert len(events) == 1
    event = events[0]
    assert event["exception"]["values"][-1]["value"] == "boom from a view"
    assert event["environment"] == "ci"
    assert event["release"].startswith("iotistic-billing@")
    # no personal data: no cookies or user from the request
    assert "user" not in event


def test_without_a_dsn_nothing_is_sent(sentry_server):
    _, received = sentry_server
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    result = subprocess.run(
        [sys.executable, "-c", RAISE_IN_A_VIEW],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["500", "False"]
    assert received == []
