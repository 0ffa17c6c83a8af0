"""``python -m stripe_simulator`` (what ``make run`` starts): its state survives a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stripe

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Simulator:
    """The simulator as a separate process, run from `cwd` like honcho runs it."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        environment = {k: v for k, v in os.environ.items() if k != "STRIPE_SIMULATOR_STATE_FILE"}
        environment.update(PYTHONPATH=str(ROOT), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stripe_simulator", "--port", str(self.port), *args],
            cwd=cwd,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = stripe.StripeClient(
            "sk_test_cli",
            base_addresses={"api": f"http://127.0.0.1:{self.port}"},
            max_network_retries=0,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("the simulator did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C, as honcho passes it on
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def run(tmp_path):
    started: list[_Simulator] = []

    def start(*args: str, env: dict[str, str] | None = None) -> _Simulator:
        started.append(_Simulator(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for simulator in started:
        if simulator.process.poll() is None:
            simulator.stop()


def test_make_runs_simulator_keeps_its_state_between_runs(run, tmp_path):
    # given the simulator as make run starts it (no state options), with a customer
    first = run()
    customer = first.client.v1.customers.create(params={"email": "kept@example.com"})
    first.stop()

    # when it is started again
    second = run()

    # then the customer is still there, kept under the working directory
    assert second.client.v1.customers.retrieve(customer.id).email == "kept@example.com"
    assert (tmp_path / ".stripe-simulator" / "state.json").is_file()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("--fresh",), None, id="fresh"),
        pytest.param((), {"STRIPE_SIMULATOR_STATE_FILE": ""}, id="memory-only"),
    ],
)
def test_the_simulator_can_start_empty(run, args, env):
    first = run(*args, env=env)
    customer = first.client.v1.customers.create(params={"email": "gone@example.com"})
    first.stop()

    second = run(*args, env=env)

    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        second.client.v1.customers.retrieve(customer.id)
