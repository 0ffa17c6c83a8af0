"""Programmatic entry point: start a simulator on a port and drive it from tests.

The handle's helpers take the store lock, so they are safe to call while the app talks to the
simulator over HTTP from other threads.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from . import recurring, resources
from .routes import INCLUDABLE
from .server import SimulatorServer
from .state import ApiError, Failure, Obj, Store, public
from .webhooks import DEFAULT_WEBHOOK_SECRET, Delivery, WebhookDispatcher, sign_payload


class SimulatorHandle:
    """A running simulator. Use as a context manager or call ``stop()``."""

    sign_payload = staticmethod(sign_payload)

    def __init__(
        self,
        server: SimulatorServer,
        thread: threading.Thread,
        store: Store,
        dispatcher: WebhookDispatcher | None,
        webhook_secret: str,
    ) -> None:
        self.server, self.state = server, store
        self._thread, self._dispatcher = thread, dispatcher
        self.webhook_secret = webhook_secret
        self.port: int = server.server_address[1]
        self.base_url = store.base_url

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, join every thread, and flush queued webhooks (no stray warnings)."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
        if self._dispatcher is not None:
            self._dispatcher.close()

    # ---------------------------------------------------------------- clock
    def now(self) -> int:
        return self.state.now()

    def freeze_clock(self, at: int | None = None) -> int:
        """Stop the simulated clock (at ``at`` or the current simulated time) for exact maths."""
        with self.state.lock:
            self.state.frozen_at = self.state.now() if at is None else int(at)
            return self.state.frozen_at

    def advance_clock(self, seconds: int, *, process_renewals: bool = True) -> int:
        """Move simulated time forward; by default renew subscriptions whose period ended."""
        with self.state.lock:
            self.state.advance(seconds)
            if process_renewals:
                recurring.process_due(self.state)
            self.state.save()
            return self.state.now()

    # ---------------------------------------------------------------- flows
    def complete_checkout(self, session_id: str, card_number: str = "4242424242424242") -> Obj:
        """Pay a checkout session as the hosted page would; raises ``ApiError`` on decline."""
        with self.state.lock:
            session = public(recurring.complete_checkout(self.state, session_id, card_number))
            self.state.save()
            return session

    def renew_subscription(self, subscription_id: str) -> Obj:
        """Bill the next period now and pay it with the subscription's card."""
        return self._renew(subscription_id, fail=False)

    def fail_renewal(self, subscription_id: str) -> Obj:
        """Bill the next period and decline the payment: invoice open, subscription past_due."""
        return self._renew(subscription_id, fail=True)

    def _renew(self, subscription_id: str, *, fail: bool) -> Obj:
        with self.state.lock:
            sub = self.state.get(subscription_id, "subscription")
            renewed = public(recurring.renew(self.state, sub, fail=fail))
            self.state.save()
            return renewed

    def meter_total(
        self, customer: str, meter: str, start: int | None = None, end: int | None = None
    ) -> float:
        """Aggregated meter value (meter id or event_name) for a customer over [start, end)."""
        with self.state.lock:
            return resources.meter_total(self.state, customer, meter, start, end)

    def get(self, object_id: str) -> Obj:
        """An object as the API shows it (without ``expand``), straight from the store."""
        with self.state.lock:
            return self.state.view(self.state.objects[object_id])

    def forget(self, object_id: str) -> None:
        """Drop an object, as a simulator restarted without its state would have lost it."""
        with self.state.lock:
            del self.state.objects[object_id]
            self.state.save()

    # ---------------------------------------------------------------- faults
    def fail_next(
        self,
        path_prefix: str,
        error: dict[str, Any] | str | None = None,
        *,
        status: int = 500,
        method: str | None = None,
        after: bool = False,
        retryable: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching /v1 calls with an error.

        ``after=True`` runs the call first (its effects and idempotent result are kept) and
        then returns the error, like a reply lost on the network. ``retryable`` sets
        ``Stripe-Should-Retry``; it defaults to false so ``stripe``'s own retries (2 by
        default) do not hide the failure.
        """
        if not isinstance(error, dict):
            error = {"type": "api_error", "message": error or "Simulated failure (fail_next)."}
        with self.state.lock:
            self.state.failures.append(
                Failure(path_prefix, method, status, error, after, retryable, times)
            )

    # ---------------------------------------------------------------- events & webhooks
    def events(self, event_type: str | None = None) -> list[Obj]:
        """Events oldest first (the API lists newest first)."""
        with self.state.lock:
            found = reversed(self.state.all("event"))
            return [public(e) for e in found if event_type in (None, e["type"])]

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self._dispatcher.deliveries) if self._dispatcher else []

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until queued webhooks were attempted, then return all deliveries so far."""
        if self._dispatcher is not None and not self._dispatcher.wait(timeout):
            raise TimeoutError("webhook deliveries still pending")
        return self.deliveries

    def hold_webhooks(self) -> None:
        """Queue webhooks instead of sending them (see ``take_held_webhooks``)."""
        if self._dispatcher is None:
            raise RuntimeError("no webhook_url configured")
        self._dispatcher.hold()

    def take_held_webhooks(self) -> list[Obj]:
        """The events held since ``hold_webhooks`` (oldest first), no longer queued; sending
        resumes for later events."""
        if self._dispatcher is None:
            raise RuntimeError("no webhook_url configured")
        payloads = self._dispatcher.take_held()
        self._dispatcher.release()
        return [json.loads(payload) for payload in payloads]

    def redeliver(self, event_id: str, times: int = 1) -> None:
        """Send a stored event again (same id and body, fresh signature), e.g. for dedup tests."""
        if self._dispatcher is None:
            raise RuntimeError("no webhook_url configured")
        with self.state.lock:
            event = public(self.state.get(event_id, "event"))
        self._dispatcher.enqueue(event, times)


logger = logging.getLogger("stripe_simulator")


def start_simulator(
    port: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    host: str = "127.0.0.1",
    state_file: str | Path | None = None,
) -> SimulatorHandle:
    """Serve the simulator on a background thread; ``port=0`` picks a free port.

    Without ``state_file`` the state lives in memory only (what tests want); with one, it is
    read at start and written after every change, so a restart keeps customers, prices,
    subscriptions and idempotency keys (what ``make run`` wants).
    """
    store = Store(includables=INCLUDABLE)
    if state_file is not None:
        store.state_file = Path(state_file)
        if store.load():
            logger.info("Stripe simulator state read from %s", store.state_file)
    dispatcher = WebhookDispatcher(webhook_url, webhook_secret) if webhook_url else None
    store.on_event = dispatcher.enqueue if dispatcher else None
    server = SimulatorServer((host, port), store)
    store.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="stripe-sim-http",
        daemon=True,
    )
    thread.start()
    return SimulatorHandle(server, thread, store, dispatcher, webhook_secret)


__all__ = ["ApiError", "SimulatorHandle", "start_simulator"]
