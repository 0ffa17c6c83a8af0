"""The store behind the simulator: Stripe-shaped JSON objects, a clock, and one lock.

Everything lives in one dict keyed by object id, so retrieve, list and ``expand[]`` stay
generic and what we serve is what we store, minus ``_``-prefixed bookkeeping keys (fields the
simulator keeps for itself, e.g. a card's full number, or what Stripe returns only when
expanded). A single re-entrant lock serialises every API call: a simulator gains nothing from
finer locking, and it makes idempotency and check-then-act logic (refund limits) race-free.
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import string
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stripe

Obj = dict[str, Any]
API_VERSION: str = stripe.api_version
IDEMPOTENCY_SECONDS = 24 * 3600  # Stripe keeps a key's first result for at least 24 hours
_ALPHABET = string.ascii_letters + string.digits
_STATE_VERSION = 2  # bump when the stored shapes change: an older state file is set aside
logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A Stripe-shaped API error; the HTTP layer turns it into the ``{"error": ...}`` envelope.

    ``validation`` marks errors Stripe raises before a request runs (unknown or malformed
    parameters): their result is not kept for the idempotency key.
    """

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        *,
        status: int = 400,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's own field name
        decline_code: str | None = None,
        should_retry: bool | None = None,
        validation: bool = False,
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status
        self.type, self.decline_code, self.should_retry = type, decline_code, should_retry
        self.validation = validation

    def body(self) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        for key in ("code", "param", "decline_code"):
            if getattr(self, key) is not None:
                error[key] = getattr(self, key)
        if self.code:
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        return {"error": error}


def missing(kind: str, object_id: object, param: str = "id") -> ApiError:
    """The 404 Stripe returns for an unknown id (``stripe`` raises InvalidRequestError)."""
    return ApiError(f"No such {kind}: '{object_id}'", param, "resource_missing", status=404)


def public(value: Any) -> Any:
    """Deep copy without private ``_`` keys: what leaves the simulator is never shared state."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    """Stripe's list envelope, used for top-level lists and embedded ones (items, lines)."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


@dataclass
class Failure:
    """An error injected by ``fail_next``; ``after`` means: run the call, then lose the reply."""

    prefix: str
    method: str | None
    status: int
    error: Obj
    after: bool
    retryable: bool
    times: int = 1


@dataclass
class Replay:
    """The first result of a request made with an idempotency key."""

    fingerprint: str
    status: int
    body: bytes
    created: int  # simulated time


# An includable field (returned only when expanded): object type -> field -> builder.
Includer = Callable[["Store", Obj], Any]


@dataclass
class Store:
    """All simulator state. Hold ``lock`` around anything that reads and then writes."""

    base_url: str = ""
    on_event: Callable[[Obj], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    objects: dict[str, Obj] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], Replay] = field(default_factory=dict)
    meter_events: list[Obj] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    request: Obj = field(default_factory=lambda: {"id": None, "idempotency_key": None})
    offset: int = 0
    frozen_at: int | None = None
    invoice_seq: int = 0
    includables: dict[str, dict[str, Includer]] = field(default_factory=dict)
    # (method, route, status) of recent API calls: what the contract test checks it covered.
    request_log: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=20000))
    state_file: Path | None = None

    # ---------------------------------------------------------------- clock
    def now(self) -> int:
        """Simulated Unix time: wall clock plus ``offset``, or ``frozen_at`` when frozen."""
        return self.frozen_at if self.frozen_at is not None else int(time.time()) + self.offset

    def advance(self, seconds: int) -> None:
        if self.frozen_at is not None:
            self.frozen_at += int(seconds)
        else:
            self.offset += int(seconds)

    # ---------------------------------------------------------------- objects
    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    def add(self, obj: Obj) -> Obj:
        """Store a complete object (see shapes.py) under its id."""
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: Any, object_type: str, param: str = "id") -> Obj:
        """Look an object up by id and type, raising Stripe's 404 if absent or deleted."""
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj["object"] != object_type or obj.get("_deleted"):
            raise missing(object_type.rsplit(".", 1)[-1].replace("_", " "), object_id, param)
        return obj

    def all(self, object_type: str) -> list[Obj]:
        """Live objects of one type, newest first (Stripe's list order)."""
        return [
            o
            for o in reversed(self.objects.values())
            if o["object"] == object_type and not o.get("_deleted")
        ]

    def page(self, items: list[Obj], params: Obj, url: str = "") -> Obj:
        """One page of a newest-first list: ``limit`` and a cursor, ``starting_after`` (older
        objects) or ``ending_before`` (newer ones, the page right before the cursor)."""
        raw = params.get("limit")
        try:
            limit = int(raw) if raw not in (None, "") else 10
        except (TypeError, ValueError):
            raise ApiError(
                f"Invalid integer: {raw}", "limit", "parameter_invalid_integer", validation=True
            ) from None
        if not 1 <= limit <= 100:
            raise ApiError(
                "This value must be between 1 and 100 (inclusive).",
                "limit",
                "parameter_invalid_integer",
                validation=True,
            )
        ids = [o["id"] for o in items]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            raise ApiError(
                "You may only specify one of these parameters: ending_before, starting_after.",
                validation=True,
            )
        for cursor, name in ((after, "starting_after"), (before, "ending_before")):
            if cursor and cursor not in ids and cursor not in self.objects:
                raise missing("object", cursor, name)
        if before:
            newer = items[: ids.index(before)] if before in ids else []
            return list_object(newer[-limit:], url, has_more=len(newer) > limit)
        if after in ids:
            items = items[ids.index(after) + 1 :]
        return list_object(items[:limit], url, has_more=len(items) > limit)

    def view(self, obj: Obj) -> Obj:
        """The public copy of a stored object; a deleted one is Stripe's deleted stub."""
        if obj.get("_deleted"):
            return {"id": obj["id"], "object": obj["object"], "deleted": True}
        return public(obj)

    def render(self, obj: Obj, expand: list[str]) -> Obj:
        """Public copy of ``obj`` with ``expand[]`` paths (already validated) inlined."""
        out = self.view(obj)
        for path in expand:
            out = self._expand(out, path.split("."))
        return out

    def _expand(self, node: Any, parts: list[str]) -> Any:
        if not parts:
            return node
        if isinstance(node, list):
            return [self._expand(n, parts) for n in node]
        if not isinstance(node, dict):
            return node
        head, rest = parts[0], parts[1:]
        include = self.includables.get(node.get("object", ""), {}).get(head)
        value = node.get(head)
        if include is not None and value is None and head not in node:
            stored = self.objects.get(node.get("id", ""))
            value = include(self, stored) if stored is not None else None
        if isinstance(value, str) and value in self.objects:
            value = self.view(self.objects[value])
        elif isinstance(value, list):  # a list of expandable ids (``invoice.discounts``)
            value = [
                self.view(self.objects[v]) if isinstance(v, str) and v in self.objects else v
                for v in value
            ]
        if value is not None:
            node[head] = self._expand(value, rest)
        return node

    # ---------------------------------------------------------------- events
    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event with a snapshot of ``obj`` and hand it to the webhook dispatcher.
        As on Stripe, includable fields (an invoice's payments...) are never in an event."""
        data: Obj = {"object": self.view(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self.add(
            {
                "id": self.new_id("evt_"),
                "object": "event",
                "api_version": API_VERSION,
                "created": self.now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": 1 if self.on_event else 0,
                "request": dict(self.request),
                "type": event_type,
            }
        )
        if self.on_event:
            self.on_event(event)
        return event

    # ---------------------------------------------------------------- idempotency
    def replay(self, key: tuple[str, str]) -> Replay | None:
        """The stored first result for a key, unless it is older than 24 h (simulated)."""
        found = self.idempotency.get(key)
        if found is not None and self.now() - found.created >= IDEMPOTENCY_SECONDS:
            del self.idempotency[key]
            return None
        return found

    # ---------------------------------------------------------------- fault injection
    def take_failure(self, method: str, path: str) -> Failure | None:
        """Pop (or count down) the first injected failure matching this request."""
        for failure in self.failures:
            if path.startswith(failure.prefix) and failure.method in (None, method):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    # ---------------------------------------------------------------- persistence
    _SAVED = ("objects", "idempotency", "meter_events", "offset", "frozen_at", "invoice_seq")

    def save(self) -> None:
        """Write the state file atomically (``make run`` keeps state across restarts)."""
        if self.state_file is None:
            return
        state = {name: getattr(self, name) for name in self._SAVED}
        state["version"] = _STATE_VERSION
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        ignore = self.state_file.parent / ".gitignore"
        if not ignore.exists():  # as pytest does for its cache: never committed by accident
            ignore.write_text("# Created by the Stripe simulator: local state only.\n*\n")
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".state-")
        with os.fdopen(fd, "wb") as out:
            pickle.dump(state, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.state_file)

    def load(self) -> bool:
        """Read the state file if there is one; False (and a fresh state) otherwise."""
        if self.state_file is None or not self.state_file.exists():
            return False
        try:
            with self.state_file.open("rb") as src:
                # Our own file, written by save() on this machine for local development.
                state = pickle.load(src)  # noqa: S301
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            logger.warning("Stripe simulator state %s unreadable (%s): starting empty", self, exc)
            return False
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            aside = self.state_file.with_suffix(".old")
            os.replace(self.state_file, aside)
            logger.warning("Stripe simulator state from an older version moved to %s", aside)
            return False
        for name in self._SAVED:
            setattr(self, name, state[name])
        return True


def diff(before: Obj, after: Obj) -> Obj:
    """``previous_attributes`` for an ``*.updated`` event: old values of changed top-level keys."""
    new = public(after)
    return {k: v for k, v in public(before).items() if new.get(k) != v}
