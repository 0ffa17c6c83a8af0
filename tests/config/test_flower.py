"""Flower as `make run`, compose and the chart start it (config/flower.py): the address
without the trailing slash works, and everything behind the prefix needs the login."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "ops:flower-test-password"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def flower_url():
    port = _free_port()
    env = {**os.environ, "FLOWER_BASIC_AUTH": LOGIN, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.flower",
            "--address=127.0.0.1",
            f"--port={port}",
            "--url_prefix=admin/queues",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("Flower did not start")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    process.stderr.close()


def _get(url: str, *, login: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers)


def test_flower_address_without_trailing_slash_redirects_to_the_dashboard(flower_url):
    status, headers = _get(f"{flower_url}/admin/queues")
    assert status == 301
    assert headers["Location"] == "/admin/queues/"


def test_flower_dashboard_needs_the_login(flower_url):
    assert _get(f"{flower_url}/admin/queues/")[0] == 401
    assert _get(f"{flower_url}/admin/queues/", login=LOGIN)[0] == 200


@pytest.mark.parametrize("path", ["metrics", "healthcheck"])
def test_flower_metrics_and_healthcheck_need_the_login(flower_url, path):
    assert _get(f"{flower_url}/admin/queues/{path}")[0] == 401
    assert _get(f"{flower_url}/admin/queues/{path}", login="ops:wrong")[0] == 401
    assert _get(f"{flower_url}/admin/queues/{path}", login=LOGIN)[0] == 200


def test_flower_links_follow_the_configured_port():
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.FLOWER_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "FLOWER_PORT": "5600", "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "http://127.0.0.1:5600/admin/queues/"
