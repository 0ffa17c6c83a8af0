"""`make run`'s supervisor (config/supervisor.py) with real processes: a helper that exits is
restarted, the web server's exit stops everything, a stop signal stops everything cleanly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from config import supervisor as supervisor_module
from config.supervisor import Supervisor

PY = sys.executable


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return f"{PY} {path}"


@pytest.fixture(autouse=True)
def _fast_restarts(monkeypatch):
    monkeypatch.setattr(supervisor_module, "STOP_GRACE_SECONDS", 3.0)


def _run_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    """Run it beside the test (signal handlers belong to the main thread: none here)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run(handle_signals=False)))
    thread.start()
    return thread, result


def test_a_crashing_helper_is_restarted_while_the_web_server_keeps_running(tmp_path):
    counter = tmp_path / "starts"
    helper = _script(
        tmp_path,
        "helper",
        f"""
        from pathlib import Path
        path = Path({str(counter)!r})
        path.write_text(path.read_text() + "x" if path.exists() else "x")
        raise SystemExit(3)
        """,
    )
    web = _script(tmp_path, "web", "import time\nprint('serving', flush=True)\ntime.sleep(60)\n")
    out = io.StringIO()
    supervisor = Supervisor({"web": web, "helper": helper}, out=out)

    thread, result = _run_in_thread(supervisor)
    deadline = time.monotonic() + 15
    while (not counter.exists() or len(counter.read_text()) < 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    supervisor.stop()
    thread.join(20)

    assert len(counter.read_text()) >= 3  # started, restarted, restarted again
    assert result == [0]
    log = out.getvalue()
    assert "helper exited (3); restarting in 1 s" in log
    assert "helper exited (3); restarting in 2 s" in log
    assert "web      | serving" in log or "web    | serving" in log
    assert supervisor.programs["web"].process.poll() is not None  # stopped with the rest


def test_the_web_server_exiting_stops_everything_with_its_code(tmp_path):
    sleeper = _script(tmp_path, "sleeper", "import time\ntime.sleep(60)\n")
    web = _script(tmp_path, "web", "raise SystemExit(7)\n")
    supervisor = Supervisor({"web": web, "worker": sleeper}, out=io.StringIO())

    thread, result = _run_in_thread(supervisor)
    thread.join(20)

    assert result == [7]
    assert supervisor.programs["worker"].process.poll() is not None


def test_sigterm_stops_everything_and_exits_zero(tmp_path):
    sleeper = _script(tmp_path, "sleeper", "import time\ntime.sleep(60)\n")
    driver = _script(
        tmp_path,
        "driver",
        f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from config.supervisor import Supervisor
        sys.exit(Supervisor({{"web": {sleeper!r}, "beat": {sleeper!r}}}).run())
        """,
    )
    process = subprocess.Popen(driver.split(), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    started = 0
    while started < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        started += " started (pid " in line
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    rest = process.stdout.read()
    process.stdout.close()
    assert "web stopped" in rest
    assert "beat stopped" in rest


def test_commands_carry_no_secrets(settings):
    # the serve command passes the webhook secret and Flower's login through the environment
    source = (settings.BASE_DIR / "customers" / "management" / "commands" / "serve.py").read_text()
    assert "--webhook-secret" not in source
    assert "--basic_auth" not in source
    assert "NamedTemporaryFile" not in source  # no Procfile with secrets left in /tmp
