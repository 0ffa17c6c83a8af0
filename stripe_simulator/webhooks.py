"""Webhook signing and delivery with Stripe's real scheme, so the app verifies them unmodified.

Delivery runs on one background thread, in event order: an API call that fires events never
waits for the app's webhook view (a single-threaded dev server that calls the simulator and
receives its webhooks would otherwise deadlock). Tests call ``wait()`` for determinism.
Each event is attempted once; there are no automatic retries (``redeliver`` exists for that).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass

from .state import Obj

# Public, local-only default so a dev setup works without configuration; not a credential.
DEFAULT_WEBHOOK_SECRET = "whsec_stripe_simulator_local"  # noqa: S105
logger = logging.getLogger(__name__)


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` value: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">``.

    The timestamp is wall-clock time (not the simulated clock) because
    ``stripe.Webhook.construct_event`` checks it against ``time.time()``.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    body = payload.encode() if isinstance(payload, str) else payload
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


@dataclass
class Delivery:
    """One POST attempt of one event; ``status`` is None when the endpoint was unreachable."""

    event_id: str
    event_type: str
    url: str
    payload: bytes
    signature: str
    attempt: int
    status: int | None = None
    error: str | None = None
    response_body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDispatcher:
    """Queue of events to POST to one endpoint, drained by a single worker thread."""

    def __init__(self, url: str, secret: str, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self.deliveries: list[Delivery] = []
        self._queue: deque[tuple[str, str, bytes]] = deque()
        self._attempts: dict[str, int] = {}
        self._cond = threading.Condition()
        self._busy = self._closed = self._held = False
        self._thread = threading.Thread(target=self._run, name="stripe-sim-webhooks", daemon=True)
        self._thread.start()

    def enqueue(self, event: Obj, times: int = 1) -> None:
        """Serialise now (the snapshot is taken at emit time) and queue ``times`` deliveries."""
        payload = json.dumps(event, indent=2).encode()
        with self._cond:
            self._queue.extend([(event["id"], event["type"], payload)] * times)
            self._cond.notify_all()

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until every queued event has been attempted (or is held); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._queue or self._held) and not self._busy, timeout
            )

    def hold(self) -> None:
        """Keep queued events instead of sending them, until ``release`` (or ``take_held``)."""
        with self._cond:
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def take_held(self) -> list[bytes]:
        """Remove the held events from the queue and return their payloads, oldest first: a
        test can then deliver them itself, e.g. two at once, as Stripe may."""
        with self._cond:
            payloads = [payload for _, _, payload in self._queue]
            self._queue.clear()
            self._cond.notify_all()
            return payloads

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: (self._queue and not self._held) or self._closed)
                if not self._queue or self._held:
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(*item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, event_id: str, event_type: str, payload: bytes) -> None:
        attempt = self._attempts[event_id] = self._attempts.get(event_id, 0) + 1
        signature = sign_payload(payload, self.secret)
        delivery = Delivery(event_id, event_type, self.url, payload, signature, attempt)
        request = urllib.request.Request(  # noqa: S310 - the operator-configured endpoint URL
            self.url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                delivery.status, delivery.response_body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            delivery.status, delivery.response_body = exc.code, exc.read()
            exc.close()
        except (OSError, ValueError) as exc:  # refused, timeout, bad URL
            delivery.error = str(exc)
        logger.info("webhook %s %s -> %s", event_type, event_id, delivery.status or delivery.error)
        with self._cond:
            self.deliveries.append(delivery)
