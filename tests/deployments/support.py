"""Helpers of the deployment tests: polling, publishing to Redis, worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from config.celery import app

PRIORITY_SEP = "\x06\x16"  # kombu's Redis priority sub-queues are <queue>\x06\x16<n>


def wait_for(predicate: Callable, *, timeout: float = 20.0, what: str | Callable = "condition"):
    """Poll until `predicate()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reset_publishing() -> None:
    """Forget pooled connections and cached routes after the Celery config changed."""
    # Pools live on in kombu's registry (keyed by URL) and are reused; only drop ours.
    app._pool = None
    app.amqp._producer_pool = None
    app.amqp.__dict__.pop("router", None)
    app.amqp.flush_routes()


@contextmanager
def celery_publishing_to(url: str, queue: str) -> Iterator[None]:
    """Make this process publish to `url` (instead of running tasks in-process), to `queue`."""
    saved = {name: app.conf[name] for name in ("task_always_eager", "broker_url", "task_routes")}
    app.conf.task_always_eager = False
    app.conf.broker_url = url
    app.conf.task_routes = {"deployments.*": {"queue": queue}}
    reset_publishing()
    try:
        yield
    finally:
        for name, value in saved.items():
            app.conf[name] = value
        reset_publishing()


def forget_queue(url: str, queue: str) -> None:
    """Delete the queue's keys and its unacknowledged messages (those of killed workers)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.delete(queue, *(f"{queue}{PRIORITY_SEP}{n}" for n in (3, 6, 9)))
        client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        for tag, payload in client.hgetall("unacked").items():
            try:
                routing_key = json.loads(payload)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


@dataclass
class Worker:
    process: subprocess.Popen
    name: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_text()[-3000:]}")
            return f"{self.name} ready." in self.log_text()

        wait_for(ready, timeout=timeout, what=lambda: f"worker ready\n{self.log_text()[-3000:]}")

    def active_pids(self) -> dict[str, int]:
        """task id -> pid of the pool child running it (as Flower shows them)."""
        replies = app.control.inspect(destination=[self.name], timeout=1.0).active() or {}
        return {task["id"]: task["worker_pid"] for task in replies.get(self.name, [])}

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool children: a lost machine."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Kill the worker: its jobs are over, and a warm shutdown costs seconds per test.

        Anything it left unacknowledged is dropped with the test's queue (forget_queue).
        """
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
